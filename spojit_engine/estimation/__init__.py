"""What a workflow run will cost before it runs, and how to spend less: ``estimate`` and
``advise`` (what ``Engine.estimate`` and ``Engine.advice`` call) and the ``Estimate`` and
``Advice`` they hand back. A lazy face (``spojit_engine/lazy.py``); README.md maps the modules."""

from typing import TYPE_CHECKING

from spojit_engine.lazy import exports

__all__ = ["Advice", "Estimate", "advise", "estimate"]  # pinned by tests/estimates/test_shapes.py

__getattr__ = exports(
    __name__,
    {
        "Advice": "spojit_engine.estimation.results",
        "Estimate": "spojit_engine.estimation.results",
        "advise": "spojit_engine.estimation.estimator",
        "estimate": "spojit_engine.estimation.estimator",
    },
)

if TYPE_CHECKING:
    from spojit_engine.estimation.estimator import advise, estimate
    from spojit_engine.estimation.results import Advice, Estimate
