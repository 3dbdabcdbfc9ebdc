"""Workflow webhooks for self-hosted Prefect (OSS Prefect has none): ``POST /hooks/{name}``
starts a run of the workflow's deployment with the JSON body as its ``payload``.

Every accepted request is first a row of ``webhook_queue`` (committed before anything starts), so
no request is lost and none runs twice:

- While the workspace is stopped (out of credits, or the workflow's day cap spent) a request
  waits there, at most ``SPOJIT_WEBHOOK_QUEUE_MAX`` per hook; past that it is refused (402).
- ``drain`` starts waiting requests oldest first, one drainer per hook at a time (a lease on the
  hook's row). Each start is ``create_flow_run_from_deployment`` with the idempotency key
  ``spojit-hook:{run_key}:{attempt}``, ``run_key`` being random per request (made when it is
  queued): a drainer that dies between starting the run and marking the row started retries the
  same key, and Prefect returns the same run — while no other ledger on the same Prefect server,
  nor this one restored from a backup, can ever present the same key for another request.
- A request that cannot start for good becomes a dead letter (state ``dead``, with the reason,
  logged as a WARNING and counted in ``spojit deployments``) and the ones behind it start: one
  Prefect refuses (a 4xx, a deleted deployment) or that cannot be sent at once, one Prefect
  answers with a server error after ``SPOJIT_WEBHOOK_START_FAILURES_MAX`` tries. While Prefect
  does not answer at all, nothing is counted: the queue waits.
- A webhook run the guard refuses at its start (nothing ran) goes back to the queue under its own
  id, so it replays before anything that arrived later.
- A body that holds a NUL or a lone surrogate (valid JSON, but no database nor Prefect takes it)
  is refused at the door (``jsonbody.parse_json``), before anything is queued.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import is_sqlite, read_transaction, write_transaction
from spojit_engine.errors import AlreadyExists, InvalidInput, Unauthorized
from spojit_engine.guards import prefect_api
from spojit_engine.guards.errors import PrefectUnavailable, QueueFull, UnknownHook
from spojit_engine.guards.policy import HOOK_REQUEST_TAG
from spojit_engine.guards.schema import webhook_queue, workflow_hooks
from spojit_engine.guards.store import count_rows, release_lease, try_lease
from spojit_engine.jsonbody import parse_json
from spojit_engine.metering.meter.run_context import TRIGGER_TAG, WORKSPACE_TAG, TriggerKind

if TYPE_CHECKING:
    from spojit_engine.guards.port import GuardPort

HOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
QUEUED, STARTED, DEAD = "queued", "started", "dead"
log = logging.getLogger(__name__)
DEAD_LETTER_REASON = (
    "Prefect refused to start this run; the request is kept as a dead letter for the operator "
    "(spojit deployments) and is not retried."
)
_DRAIN_PASSES_MAX = 3  # a pass picks up what arrived while the previous one held the lease


@dataclass(frozen=True, slots=True)
class Hook:
    name: str
    workflow: str
    workspace_id: str
    deployment_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ``POST /hooks/{name}`` answers (202)."""

    status: str  # started, queued, or failed (a dead letter: it will not start)
    request_id: int
    flow_run_id: str | None = None
    position: int | None = None  # 1 = next to start
    reason: str | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


_DUMMY_HASH = _hash(secrets.token_urlsafe(32))  # what an unknown hook's secret is compared to


class Webhooks:
    def __init__(self, guard: GuardPort) -> None:
        self.guard = guard
        self.engine = guard.sa
        self.clock = guard.clock
        self.queue_max = guard.settings.webhook_queue_max
        self.failures_max = guard.settings.webhook_start_failures_max

    # -- registration ------------------------------------------------------------------------------

    def create(self, name: str, *, workflow: str, workspace_id: str, deployment_id: str) -> str:
        """Register (or re-point, with a new secret) the hook ``name``; returns the secret,
        shown once and stored only as its SHA-256."""
        if not HOOK_NAME.match(name):
            raise InvalidInput(
                f"Webhook name {name!r} must be 1-128 letters, digits, '.', '_' or '-'."
            )
        secret = f"whk_{secrets.token_urlsafe(32)}"
        h = workflow_hooks.c
        values = {
            "workflow": workflow,
            "deployment_id": deployment_id,
            "secret_hash": _hash(secret),
        }
        with write_transaction(self.engine) as conn:
            owner = conn.execute(select(h.workspace_id).where(h.name == name)).scalar()
            if owner is not None and owner != workspace_id:
                raise AlreadyExists(
                    f"Webhook {name} belongs to another workspace; deploy with another --name."
                )
            if owner is None:
                conn.execute(
                    insert(workflow_hooks).values(
                        name=name, workspace_id=workspace_id, created_at=self.clock(), **values
                    )
                )
            else:
                conn.execute(update(workflow_hooks).where(h.name == name).values(**values))
        return secret

    def check_free(self, name: str, workspace_id: str) -> None:
        """``AlreadyExists`` when another workspace owns the webhook ``name``."""
        h = workflow_hooks.c
        with read_transaction(self.engine) as conn:
            owner = conn.execute(select(h.workspace_id).where(h.name == name)).scalar()
        if owner is not None and owner != workspace_id:
            raise AlreadyExists(
                f"Webhook {name} belongs to another workspace; deploy with another --name."
            )

    def find(self, name: str) -> Hook:
        h = workflow_hooks.c
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(h.name, h.workflow, h.workspace_id, h.deployment_id).where(h.name == name)
            ).one_or_none()
        if row is None:
            raise UnknownHook(name)
        return Hook(*row)

    def authenticate(self, name: str, secret: str | None) -> Hook:
        """The hook, if ``secret`` is its secret. An unknown hook, a name that cannot be one
        (checked before the database sees it) and a wrong secret all answer the same 401, after
        the same hash comparison, so hook names cannot be enumerated."""
        found = None
        if HOOK_NAME.match(name):
            h = workflow_hooks.c
            with read_transaction(self.engine) as conn:
                found = conn.execute(
                    select(
                        h.name, h.workflow, h.workspace_id, h.deployment_id, h.secret_hash
                    ).where(h.name == name)
                ).one_or_none()
        stored = str(found.secret_hash) if found is not None else _DUMMY_HASH
        matches = hmac.compare_digest(_hash(secret or ""), stored)
        if found is None or not secret or not matches:
            raise Unauthorized("No webhook of that name takes this secret.")
        return Hook(found.name, found.workflow, found.workspace_id, found.deployment_id)

    def hooks_of(self, workspace_id: str, workflow: str | None = None) -> list[Hook]:
        h = workflow_hooks.c
        query = select(h.name, h.workflow, h.workspace_id, h.deployment_id).where(
            h.workspace_id == workspace_id
        )
        if workflow is not None:
            query = query.where(h.workflow == workflow)
        with read_transaction(self.engine) as conn:
            return [Hook(*row) for row in conn.execute(query.order_by(h.name))]

    # -- requests ----------------------------------------------------------------------------------

    def receive(self, hook: Hook, body: bytes) -> Receipt:
        """Accept one request: queue it, and start it at once unless the workspace is stopped."""
        settings = self.guard.settings
        parse_json(  # a 400 before anything is queued: the queue keeps the text as received
            body, depth_max=settings.json_depth_max, digits_max=settings.json_number_digits_max
        )
        payload_text = body.decode("utf-8")
        reason = self.guard.stopped_reason(hook.workspace_id, hook.workflow, check_balance=True)
        request_id = self._enqueue(hook, payload_text, reason)
        if reason is None:
            self.drain(hook.name)
        return self._receipt(hook, request_id)

    def _enqueue(self, hook: Hook, payload_text: str, reason: str | None) -> int:
        q, h = webhook_queue.c, workflow_hooks.c
        with write_transaction(self.engine) as conn:
            if not is_sqlite(self.engine):  # SQLite: BEGIN IMMEDIATE already serialises writers
                conn.execute(select(h.name).where(h.name == hook.name).with_for_update())
            queued = conn.execute(
                select(func.count()).where(q.hook == hook.name, q.state == QUEUED)
            ).scalar_one()
            if queued >= self.queue_max:
                raise QueueFull(
                    hook.name,
                    queued,
                    reason or "Earlier requests are still being started; retry shortly.",
                )
            result = conn.execute(
                insert(webhook_queue).values(
                    hook=hook.name,
                    workflow=hook.workflow,
                    workspace_id=hook.workspace_id,
                    body=payload_text,
                    state=QUEUED,
                    attempts=0,
                    run_key=secrets.token_hex(16),
                    queued_reason=reason,
                    received_at=self.clock(),
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise IntegrityError("INSERT INTO webhook_queue", None, Exception("no id"))
            return int(key[0])

    def _receipt(self, hook: Hook, request_id: int) -> Receipt:
        q = webhook_queue.c
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(q.state, q.flow_run_id, q.queued_reason).where(q.id == request_id)
            ).one()
            if row.state == STARTED:
                return Receipt(STARTED, request_id, flow_run_id=row.flow_run_id)
            if row.state == DEAD:  # the details are the operator's (log, spojit deployments)
                return Receipt("failed", request_id, reason=DEAD_LETTER_REASON)
            position = conn.execute(
                select(func.count()).where(
                    q.hook == hook.name, q.state == QUEUED, q.id <= request_id
                )
            ).scalar_one()
        reason = row.queued_reason or (
            "Waiting behind earlier requests, or for the Prefect API to answer; it starts in order."
        )
        return Receipt(QUEUED, request_id, position=int(position), reason=reason)

    def queued_count(self, workspace_id: str | None = None, hook: str | None = None) -> int:
        q = webhook_queue.c
        where = [q.state == QUEUED]
        if workspace_id is not None:
            where.append(q.workspace_id == workspace_id)
        if hook is not None:
            where.append(q.hook == hook)
        return count_rows(self.engine, webhook_queue, *where)

    def dead_letters(self, hook: str) -> tuple[int, str | None]:
        """How many of the hook's requests failed for good, and the latest one's reason."""
        q = webhook_queue.c
        where = (q.hook == hook, q.state == DEAD)
        with read_transaction(self.engine) as conn:
            count = conn.execute(select(func.count()).where(*where)).scalar_one()
            latest = conn.execute(
                select(q.id, q.error).where(*where).order_by(q.id.desc()).limit(1)
            ).one_or_none()
        return int(count), None if latest is None else f"request {latest.id}: {latest.error}"

    def waiting_hooks(self, *, limit: int) -> list[str]:
        """Hooks with requests waiting, oldest request first."""
        q = webhook_queue.c
        with read_transaction(self.engine) as conn:
            rows = conn.execute(
                select(q.hook, func.min(q.id).label("first"))
                .where(q.state == QUEUED)
                .group_by(q.hook)
                .order_by("first")
                .limit(limit)
            )
            return [row.hook for row in rows]

    # -- starting them -----------------------------------------------------------------------------

    def drain(self, name: str) -> int:
        """Start the hook's waiting requests in order while its workspace may run; returns how
        many this call started. Another drainer holding the hook's lease makes this a no-op."""
        hook = self.find(name)
        h = workflow_hooks.c
        owner = self.guard.new_owner()
        ttl = timedelta(seconds=self.guard.settings.guard_lease_seconds)
        started = 0
        for _ in range(_DRAIN_PASSES_MAX):
            if not try_lease(self.engine, workflow_hooks, h.name == name, owner, self.clock(), ttl):
                return started
            try:
                started += self._drain_pass(hook, owner, ttl)
            except PrefectUnavailable as exc:
                self.guard.note(f"Webhook {name}: requests stay queued: {exc}")
                return started
            finally:
                release_lease(self.engine, workflow_hooks, h.name == name, owner)
            if self.queued_count(hook=name) == 0 or self.guard.stopped_reason(
                hook.workspace_id, hook.workflow
            ):
                return started
        return started

    def _drain_pass(self, hook: Hook, owner: str, ttl: timedelta) -> int:
        started = 0
        if self.guard.stopped_reason(hook.workspace_id, hook.workflow, check_balance=True):
            return 0
        with prefect_api.client() as prefect:
            for _ in range(self.queue_max * 2):  # bounded: the queue holds at most queue_max
                if self.guard.stopped_reason(hook.workspace_id, hook.workflow):
                    break
                row = self._oldest_waiting(hook.name)
                if row is None:
                    break
                started += self._start(prefect, hook, row, owner, ttl)
        return started

    def _oldest_waiting(self, hook_name: str) -> Any:
        """The hook's oldest waiting request (id, body, attempts, run_key, failures), or None."""
        q = webhook_queue.c
        with read_transaction(self.engine) as conn:
            return conn.execute(
                select(q.id, q.body, q.attempts, q.run_key, q.failures)
                .where(q.hook == hook_name, q.state == QUEUED)
                .order_by(q.id)
                .limit(1)
            ).one_or_none()

    def _start(self, prefect: Any, hook: Hook, row: Any, owner: str, ttl: timedelta) -> int:
        """Start one waiting request as a run of the hook's deployment (its attempt's key makes
        a retry return the same run), mark it started, and extend the drainer's lease; 1 when
        it started, 0 when it failed for good (a dead letter now). While Prefect cannot be
        reached, or after a server error it may recover from, the error goes on up (the request
        waits, first in line)."""
        q, h = webhook_queue.c, workflow_hooks.c
        attempt = row.attempts + 1
        try:
            run_id = prefect_api.create_run(
                prefect,
                hook.deployment_id,
                parameters={"payload": json.loads(row.body)},
                tags=[
                    TRIGGER_TAG + TriggerKind.WEBHOOK.value,
                    f"{HOOK_REQUEST_TAG}{row.id}",
                    WORKSPACE_TAG + hook.workspace_id,
                ],
                idempotency_key=f"spojit-hook:{row.run_key or row.id}:{attempt}",
            )
        except Exception as exc:
            if not self._failed(hook, row, exc):
                raise
            return 0
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(webhook_queue)
                .where(q.id == row.id, q.state == QUEUED, q.attempts == row.attempts)
                .values(
                    state=STARTED, attempts=attempt, flow_run_id=run_id, started_at=self.clock()
                )
            )
            conn.execute(
                update(workflow_hooks)
                .where(h.name == hook.name, h.lease_owner == owner)
                .values(lease_until=self.clock() + ttl)
            )
        return 1

    def _failed(self, hook: Hook, row: Any, exc: Exception) -> bool:
        """Count a failed start; True when the request is a dead letter now (it failed for
        good), False when it waits to be tried again (Prefect down, or a server error)."""
        kind = prefect_api.start_failure(exc)
        if kind == prefect_api.UNREACHABLE:
            return False
        failures = row.failures + 1
        dead = kind == prefect_api.REFUSED or failures >= self.failures_max
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        # the payload may be quoted in it: keep it storable (no surrogate, no NUL)
        detail = detail.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        error = f"Prefect {kind} ({type(exc).__name__}: {detail}), after {failures} tries"
        q = webhook_queue.c
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(webhook_queue)
                .where(q.id == row.id, q.state == QUEUED, q.attempts == row.attempts)
                .values(failures=failures, error=error, state=DEAD if dead else QUEUED)
            )
        if dead:
            log.warning(
                "Webhook %s: request %s will not start and was set aside as a dead letter "
                "(the requests behind it go on): %s.",
                hook.name, row.id, error,
            )  # fmt: skip
        return dead

    def requeue(self, request_id: int, flow_run_id: str, reason: str) -> bool:
        """Put a webhook request whose run was refused at its start back in the queue."""
        q = webhook_queue.c
        with write_transaction(self.engine) as conn:
            moved = conn.execute(
                update(webhook_queue)
                .where(q.id == request_id, q.state == STARTED, q.flow_run_id == flow_run_id)
                .values(state=QUEUED, flow_run_id=None, started_at=None, queued_reason=reason)
            ).rowcount
        return bool(moved)

    def is_queued(self, request_id: int) -> bool:
        """The request waits in its hook's queue (not started, or put back)."""
        q = webhook_queue.c
        with read_transaction(self.engine) as conn:
            state = conn.execute(select(q.state).where(q.id == request_id)).scalar()
        return state == QUEUED

    def prune(self, before: Any) -> int:
        """Forget started requests and dead letters received before ``before`` (waiting ones
        are never pruned)."""
        q = webhook_queue.c
        done = or_(
            and_(q.state == STARTED, q.started_at < before),
            and_(q.state == DEAD, q.received_at < before),
        )
        with write_transaction(self.engine) as conn:
            return int(conn.execute(delete(webhook_queue).where(done)).rowcount)
