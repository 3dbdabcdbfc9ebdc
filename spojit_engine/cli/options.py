"""What every ``spojit`` command module shares besides its context: the ``--workspace`` and
``--json`` options, the FLOW argument, and ``one_sentence_errors``, which turns our errors into
one line on stderr and exit code 1. Command modules import these from here, never from
``app.py`` (which imports them to assemble the CLI).

Two library warnings are silenced here, where every command module looks first: a person reading
a command's one-line outcome can do nothing about them."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from spojit_engine.cli.render import err_console

# Pydantic 2.14 warns about Field attributes in Prefect's own models when it first builds their
# schemas; a person reading `spojit run`'s one-line outcome can do nothing about it.
warnings.filterwarnings("ignore", module=r"pydantic\._internal\.")
# requests silences urllib3's warning that SOCKS needs PySocks, but `spojit run` imports LiteLLM
# (and requests with it) on a background thread while Prefect's main thread may be inside
# `warnings.catch_warnings()`, whose exit drops filters added meanwhile; so state it up front.
warnings.filterwarnings("ignore", module=r"urllib3\.contrib\.socks")

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace name or id (default: `spojit workspace use`, else the only one).",
        envvar="SPOJIT_WORKSPACE",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FlowArg = Annotated[
    str,
    typer.Argument(
        help="An example (lead_enrichment, support_triage, nightly_digest), a .py file, "
        "or module:attr.",
        show_default=False,
    ),
]


def one_sentence_errors(command: F) -> F:
    """Turn our errors (and bad settings) into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from spojit_engine.errors import SpojitError

        try:
            return command(*args, **kwargs)
        except SpojitError as exc:
            err_console.print(f"Error: {exc}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            err_console.print(
                f"Error: setting {where}: {first['msg']}.", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
