"""Running workflows from the command line.

- ``prepare_environment`` sets Prefect's environment (its home under ``SPOJIT_HOME``, no
  analytics, no console logs under the progress view) and must run before Prefect is imported.
- ``load_flow`` finds a workflow: an example name, a ``.py`` file, or ``module:attr``.
- ``start_prefect`` starts Prefect's local (ephemeral) server when ``PREFECT_API_URL`` is unset,
  importing LiteLLM alongside so the first LLM step does not wait for it.
- ``run_flow`` runs a workflow as a real Prefect flow billed to a workspace, with a live view of
  its nodes (``run_view``), and returns what each node cost.

Prefect and LiteLLM are imported inside functions only: ``spojit usage`` must start fast.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spojit_engine.cli.run_view import (
    RUN_RECORDS_MAX,
    NodeCost,
    RunView,
    first_run_since,
    node_costs,
    watching,
)
from spojit_engine.errors import InvalidInput, SpojitError
from spojit_engine.metering.meter.run_context import CLI_RUN_TAG

if TYPE_CHECKING:
    from rich.console import Console

    from spojit_engine.engine import Engine
    from spojit_engine.nodes import Workflow
    from spojit_engine.nodes.scope import RunScope

EXAMPLES = ("lead_enrichment", "support_triage", "nightly_digest")
PREFECT_STARTUP_TIMEOUT_SECONDS = 180  # a first start on a fresh PREFECT_HOME migrates its database


class RunFailed(SpojitError):
    """A run could not start (no Prefect API) or its workflow raised something other than a
    spojit error (a bug in a step, a tool failing)."""

    code = "run_failed"


# -- environment ----------------------------------------------------------------------------------


def prepare_environment(home: Path, *, offline: bool = False) -> None:
    """Prefect's settings for a CLI run; call before anything imports Prefect. ``offline`` (the
    demo) also forces the mock LLM and Prefect's analytics off whatever the environment says."""
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(PREFECT_STARTUP_TIMEOUT_SECONDS)
    )
    # The progress view replaces Prefect's console logs (they still reach the Prefect API);
    # set PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=INFO to see them.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    # Prefect's server analytics and its SDK telemetry (DO_NOT_TRACK) would call out of the machine.
    if offline:
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        os.environ["DO_NOT_TRACK"] = "1"
        os.environ["SPOJIT_LLM_MODE"] = "mock"
        from spojit_engine.settings import get_settings

        get_settings.cache_clear()
    else:
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")


def start_prefect() -> str:
    """Make sure a Prefect API answers (starting the local server if none is configured) while
    LiteLLM imports in the background; returns the API's address."""
    from spojit_engine.llm import litellm_module

    threading.Thread(target=litellm_module, name="import-litellm", daemon=True).start()
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    try:
        client = get_client(sync_client=True)
        error = client.api_healthcheck()
    except Exception as exc:
        error = exc
    if error is not None:
        where = f"at {configured}" if configured else "(the local server)"
        raise RunFailed(f"The Prefect API {where} did not answer: {_sentence(error)}")
    return str(client.api_url)


def _what(error: BaseException) -> str:
    return f"{type(error).__name__}: {_sentence(error)}"


def _sentence(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    text = text if len(text) <= 300 else text[:297] + "..."
    return text if text.endswith(".") else text + "."


# -- finding a workflow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedFlow:
    workflow: Workflow
    sample_input: Any
    source: str  # where it came from, for messages


def examples_dir() -> Path:
    """The shipped ``flows/`` folder, next to the package in a checkout (``pip install -e .``)."""
    return Path(__file__).resolve().parents[2] / "flows"


def load_flow(spec: str) -> LoadedFlow:
    """``spec`` is an example name, a path to a ``.py`` file (attribute ``workflow``), or
    ``module:attr`` / ``file.py:attr``."""
    from spojit_engine.nodes import Workflow

    target, _, attr = spec.partition(":")
    attr = attr or "workflow"
    if spec in EXAMPLES:
        path = examples_dir() / f"{spec}.py"
        if not path.is_file():
            raise InvalidInput(
                f"The example {spec} ships in the flows/ folder of a checkout, not found at "
                f"{path}; install with `pip install -e .` from the repository."
            )
        module = _module_from_file(path)
    elif target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise InvalidInput(f"There is no workflow file {target}.")
        module = _module_from_file(path.resolve())
    elif ":" in spec and target:
        module = _module_by_name(target)
    else:
        raise InvalidInput(
            f"Unknown flow {spec!r}; name an example ({', '.join(EXAMPLES)}), "
            "a .py file, or module:attr."
        )
    found = getattr(module, attr, None)
    if not isinstance(found, Workflow):
        raise InvalidInput(f"{spec} has no Workflow named {attr!r}.")
    return LoadedFlow(found, getattr(module, "sample_input", None), spec)


def payload_of(loaded: LoadedFlow, input_json: str | None) -> Any:
    """The run's payload: ``--input`` parsed as JSON, else the flow's ``sample_input``."""
    if input_json is None:
        return loaded.sample_input
    try:
        return json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--input is not JSON: {exc.msg} at character {exc.pos}.") from None


def _module_from_file(path: Path) -> Any:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"_spojit_flow_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise InvalidInput(f"{path} is not a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # pydantic resolves a model's annotations through sys.modules
    try:
        module_spec.loader.exec_module(module)
    except SpojitError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise InvalidInput(f"Loading {path} failed: {_what(exc)}") from exc
    return module


def _module_by_name(name: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: modules next to where you are
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"There is no module {name!r} to load a workflow from.") from exc
    except SpojitError:
        raise
    except Exception as exc:
        raise InvalidInput(f"Importing {name} failed: {_what(exc)}") from exc


# -- what a run cost ------------------------------------------------------------------------------


@dataclass
class RunReport:
    workflow: str
    workspace_id: str
    flow_run_id: str | None
    flow_run_name: str | None
    state: str | None
    test_run: bool
    member_id: str | None
    result: Any = None
    nodes: list[NodeCost] = field(default_factory=list)
    credits: Decimal = Decimal(0)
    error: BaseException | None = None


# -- running --------------------------------------------------------------------------------------


def run_flow(
    engine: Engine,
    loaded: LoadedFlow,
    *,
    workspace_id: str,
    member_id: str | None,
    test: bool,
    payload: Any,
    console: Console | None,
    scope: RunScope | None = None,
) -> RunReport:
    """Run ``loaded`` as a Prefect flow billed to ``workspace_id`` (a test run scoped by
    ``scope``); never raises for the workflow's own errors: they land in ``report.error`` with
    what the run cost until then."""
    from prefect import tags

    from spojit_engine.guards.runs.resume import run_source
    from spojit_engine.metering.meter.runtime import Runtime, use_runtime

    workflow = loaded.workflow
    marker = f"{CLI_RUN_TAG}{uuid.uuid4()}"
    view = RunView(workflow, test=test)
    report = RunReport(workflow.name, workspace_id, None, None, None, test, member_id)
    runtime = Runtime.create(engine, default_workspace=workspace_id)
    since = engine.now()
    with use_runtime(runtime), watching(engine, workspace_id, view, console):
        try:
            with tags(marker), run_source(_lasting_source(loaded.source)):
                report.result = workflow.run(
                    payload, workspace=workspace_id, member_id=member_id, test=test,
                    sample=scope.sample if scope else None,
                    max_credits=scope.max_credits if scope else None,
                )  # fmt: skip
        except Exception as exc:
            report.error = exc
        _find_flow_run(report, marker)
        if report.flow_run_id is None:
            report.flow_run_id = first_run_since(engine, workspace_id, workflow.name, since)
        rows = (
            engine.usage_records(workspace_id, flow_run_id=report.flow_run_id,
                                 limit=RUN_RECORDS_MAX)
            if report.flow_run_id else []
        )  # fmt: skip
        view.update(rows, finished=True)
    report.nodes = node_costs(rows)
    report.credits = sum((n.credits for n in report.nodes), Decimal(0))
    return report


def _lasting_source(spec: str) -> str:
    """``spec`` as it loads from any directory (a file's absolute path), for a later resume."""
    target, colon, attr = spec.partition(":")
    if target.endswith(".py"):
        return str(Path(target).expanduser().resolve()) + colon + attr
    return spec


def _find_flow_run(report: RunReport, marker: str) -> None:
    """The flow run's id, name and state, found in Prefect by the run's unique tag."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    try:
        client = get_client(sync_client=True)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[marker])), limit=1
        )
    except Exception:  # the run's outcome is already known; only its id is missing
        return
    if runs:
        run = runs[0]
        report.flow_run_id, report.flow_run_name = str(run.id), run.name
        report.state = run.state.name if run.state else None


def raise_for(report: RunReport) -> None:
    """A failed run's error, as one sentence: spojit errors as they are, others wrapped."""
    error = report.error
    if error is None:
        return
    if isinstance(error, SpojitError):
        raise error
    where = f" (flow run {report.flow_run_name})" if report.flow_run_name else ""
    raise RunFailed(f"Workflow {report.workflow} failed{where}: {_what(error)}") from error
