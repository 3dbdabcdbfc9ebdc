"""The ``spojit`` commands, one module per group; ``cli/app.py`` adds each module's ``app``.
See ``cli/README.md`` for which module holds which command."""
