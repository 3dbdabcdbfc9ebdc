"""The ``spojit`` command: a thin caller of ``Engine`` (Typer + Rich). See README.md."""

from spojit_engine.cli.app import app

__all__ = ["app"]
