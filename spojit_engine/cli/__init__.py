"""The ``spojit`` command: a thin caller of ``Engine`` (Typer + Rich). See README.md.

``app`` is imported here eagerly, unlike the package's other faces: the console script names
``spojit_engine.cli:app``, and the submodule ``cli/app.py`` would otherwise shadow the name."""

from spojit_engine.cli.app import app

__all__ = ["app"]
