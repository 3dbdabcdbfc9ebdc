"""Control nodes of nominal cost: Condition, Loop, Parallel. Their own task decides (a branch,
the items, the fan-out); their children run as task runs of their own, each billed.

Loops multiply cost: a Loop of 1,000 items over a Connector in Agent mode is 1,000 LLM calls.
``test_sample`` scopes a Loop down in test runs (``spojit run --test``; ``--sample N`` overrides
it for every Loop of the run), and ``max_concurrency`` bounds how many body runs are in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spojit_engine.errors import InvalidInput
from spojit_engine.metering.meter.run_context import current_run
from spojit_engine.nodes.base import Node, in_flow
from spojit_engine.settings import get_settings


class Condition(Node):
    """Routes its input to ``then`` when ``predicate(input)`` is true, else to ``otherwise``
    (a missing branch passes the input through)."""

    family = "condition"
    composite = True

    def __init__(self, name: str, predicate: Callable[[Any], bool], *, then: Node | None = None,
                 otherwise: Node | None = None) -> None:  # fmt: skip
        super().__init__(name)
        self.predicate = predicate
        self.then = then
        self.otherwise = otherwise

    def run(self, value: Any) -> bool:
        return bool(self.predicate(value))

    def __call__(self, value: Any = None) -> Any:
        branch = self.then if super().__call__(value) else self.otherwise
        return value if branch is None else branch(value)


class Loop(Node):
    """Runs ``body`` once per item of its input (a sequence), at most ``max_concurrency`` at a
    time, and returns the results in item order."""

    family = "loop"
    composite = True

    def __init__(self, name: str, body: Node, *, max_concurrency: int | None = None,
                 test_sample: int | None = None) -> None:  # fmt: skip
        super().__init__(name)
        limit = get_settings().loop_concurrency_max
        concurrency = limit if max_concurrency is None else max_concurrency
        if not 1 <= concurrency <= limit:
            raise InvalidInput(f"Loop {name!r}: max_concurrency must be 1-{limit}.")
        if test_sample is not None and test_sample < 1:
            raise InvalidInput(f"Loop {name!r}: test_sample must be at least 1.")
        self.body = body
        self.max_concurrency = concurrency
        self.test_sample = test_sample

    def run(self, value: Any) -> list[Any]:
        if isinstance(value, str | bytes | dict) or not isinstance(value, Sequence):
            raise InvalidInput(
                f"Loop {self.name!r} needs a list of items, not {type(value).__name__}."
            )
        items = list(value)
        run = current_run()
        sample = (run.sample or self.test_sample) if run is not None and run.test_run else None
        return items if sample is None else items[:sample]

    def __call__(self, value: Any = None) -> list[Any]:
        items = super().__call__(value)
        if not in_flow() or self.body.composite:
            return [self.body(item) for item in items]
        results: list[Any] = []
        for start in range(0, len(items), self.max_concurrency):
            window = [
                self.body.submit(item) for item in items[start : start + self.max_concurrency]
            ]
            results.extend(future.result() for future in window)
        return results


class Parallel(Node):
    """Runs every branch on the same input concurrently; returns their results in branch order."""

    family = "parallel"
    composite = True

    def __init__(self, name: str, branches: Sequence[Node]) -> None:
        super().__init__(name)
        if not branches:
            raise InvalidInput(f"Parallel {name!r} needs at least one branch.")
        self.branches = list(branches)

    def run(self, value: Any) -> Any:
        return value

    def __call__(self, value: Any = None) -> list[Any]:
        value = super().__call__(value)
        if not in_flow():
            return [branch(value) for branch in self.branches]
        futures = {i: b.submit(value) for i, b in enumerate(self.branches) if not b.composite}
        return [
            futures[i].result() if i in futures else branch(value)
            for i, branch in enumerate(self.branches)
        ]
