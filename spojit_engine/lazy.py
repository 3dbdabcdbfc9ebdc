"""A package's face, imported lazily (PEP 562): its ``__init__`` names what it exports and where
each name lives, and a name's module is imported the first time the name is read.

Why: Python runs every parent package's ``__init__`` before a module inside it, so a face that
imported its modules eagerly would make ``spojit usage`` (which reads the card over the bare
driver) pay for SQLAlchemy, Prefect and LiteLLM. A lazy face costs a dict.

Use, in a package's ``__init__.py``::

    __all__ = ["Ledger", "claw_back"]  # pinned by tests/test_package.py
    __getattr__ = exports(__name__, {
        "Ledger": "spojit_engine.metering.ledger.operations",
        "claw_back": "spojit_engine.metering.ledger.clawback",
    })

A value that is itself a module (a subpackage) is named by its own dotted path.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: each name in ``where`` read from its module
    (a name that is the module's own last part is the module itself), then kept."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        found = importlib.import_module(module)
        value = found if module.rsplit(".", 1)[-1] == name else getattr(found, name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
