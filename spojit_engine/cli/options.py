"""What every ``spojit`` command module shares besides its context: the ``--workspace`` and
``--json`` options, the FLOW argument, and ``one_sentence_errors``, which turns our errors into
one line on stderr and exit code 1; ``SpojitTyper`` (the root command) does the same for what
Click refuses before a command runs (``--items abc``), with Click's exit code 2. Command
modules import these from here, never from ``app.py`` (which imports them to assemble the CLI).

Two library warnings are silenced here, where every command module looks first: a person reading
a command's one-line outcome can do nothing about them."""

from __future__ import annotations

import functools
import re
import sys
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


# Credits as the CLI prints them: thousands grouped by commas (display.credits_text).
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")


def credits_input(text: str) -> str:
    """An amount typed as the CLI prints it (``1,000.50``) read as ``1000.50``; anything else
    unchanged, for the engine to accept or refuse in one sentence."""
    stripped = text.strip()
    return stripped.replace(",", "") if _GROUPED.fullmatch(stripped) else text


def one_sentence_errors(command: F) -> F:
    """Turn our errors (and bad settings) into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from spojit_engine.db import masked
        from spojit_engine.errors import SpojitError

        try:
            return command(*args, **kwargs)
        except SpojitError as exc:
            err_console.print(
                f"Error: {masked(str(exc))}", highlight=False, markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            err_console.print(
                f"Error: setting {where}: {first['msg']}.", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


class SpojitTyper(typer.Typer):
    """The root ``spojit`` command: Click's usage errors as one sentence on stderr (no box, no
    usage block), with the command's ``--help`` named; help and exit codes as Click gives them."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            kwargs["standalone_mode"] = False  # errors come here, to be said in one sentence
            code = typer.main.get_command(self).main(*args, **kwargs)
        except typer.TyperException as exc:  # Click's errors (Typer vendors Click privately)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `spojit credits`: the group's help
                typer.echo(exc.format_message(), err=True)
            else:
                err_console.print(
                    usage_sentence(exc), markup=False, highlight=False, soft_wrap=True
                )
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("Aborted.", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def usage_sentence(exc: Any) -> str:
    """``Error: No such option: -5 (see `spojit credits grant --help`).``"""
    message = exc.format_message().strip().rstrip(".")
    context = getattr(exc, "ctx", None)
    where = f" (see `{context.command_path} --help`)" if context is not None else ""
    return f"Error: {message}{where}."
