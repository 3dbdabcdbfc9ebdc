"""Secrets stay out of the server's access log: a one-time sign-in link carries its token in the
path (``GET /login/<token>``) or, from the "continue" form, in the query (``?token=``), and
uvicorn's access log writes every request line. ``keep_tokens_out_of_access_log`` installs a
filter on the ``uvicorn.access`` logger (once per process) that writes such a line with the
token replaced by ``…``; nothing else in the line changes.

A logger's filters survive uvicorn's own logging setup (``dictConfig`` replaces its handlers,
not its filters), so installing it when the app is built is enough.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "…"
_TOKEN_IN_PATH = re.compile(r"(/login/)[^/?#\s]+")
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&#\s]*")


def redact(text: str) -> str:
    """``text`` with every sign-in token (in a ``/login/`` path or a ``token=`` query) hidden."""
    return _TOKEN_IN_QUERY.sub(rf"\g<1>{REDACTED}", _TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text))


class TokenRedactingFilter(logging.Filter):
    """Rewrites an access-log record's arguments (uvicorn logs the request line as
    ``'%s - "%s %s HTTP/%s" %d'`` with the path as an argument) and its message; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def keep_tokens_out_of_access_log() -> None:
    """Install the filter on uvicorn's access logger, unless it is there already."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
        logger.addFilter(TokenRedactingFilter())
