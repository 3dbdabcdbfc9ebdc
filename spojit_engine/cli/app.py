"""The ``spojit`` command: the registry of its commands. Each module in ``cli/commands/`` adds
its ``app``: top-level commands join ``spojit`` itself, a named group (``spojit notify …``)
becomes a subcommand. Nothing else happens here; see README.md for which module holds what."""

from spojit_engine.cli.commands import (
    billing,
    credits,
    deploy,
    estimate,
    executions,
    members,
    notify,
    runs,
    usage,
    web,
    workspaces,
)
from spojit_engine.cli.options import SpojitTyper

app = SpojitTyper(
    name="spojit",
    help="Cost-aware workflow execution for Prefect: credits, usage and top-ups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(workspaces.app)  # spojit init, spojit workspace use|list
app.add_typer(usage.app)  # spojit usage [--breakdown] [--timeline]
app.add_typer(runs.app)  # spojit run FLOW, spojit demo
app.add_typer(billing.app)  # spojit topup PACK, spojit plan set|list
app.add_typer(web.app)  # spojit serve, spojit login-link
app.add_typer(deploy.app)  # spojit deploy FLOW, spojit deployments
app.add_typer(estimate.app)  # spojit estimate FLOW
app.add_typer(members.app)  # spojit member add|list|remove|rotate
app.add_typer(credits.app)  # spojit credits grant|list, spojit ledger verify
app.add_typer(notify.app)  # spojit notify add|list|remove|test
app.add_typer(executions.app)  # spojit executions [incomplete|resume RUN|abandon RUN]
