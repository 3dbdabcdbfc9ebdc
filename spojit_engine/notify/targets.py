"""Where a webhook alert may go: by default only to public addresses, so a rule cannot turn the
server into a probe of its own network (SSRF: ``http://127.0.0.1:5432``, the cloud metadata
service at ``169.254.169.254``, a private range, or a name that resolves to one of them).

Checked when a rule is added and again right before each delivery (a name may resolve
elsewhere by then). ``SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS=true`` allows them, for a receiver
that lives on the same machine or network. A name that does not resolve when the rule is added
is accepted (DNS may not be reachable from where the rule is written); delivery resolves and
checks it again. Delivery never follows redirects (``deliver.py``), so a public receiver cannot
bounce an alert inward.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from spojit_engine.errors import InvalidInput

ALLOW_SETTING = "SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS=true"


class PrivateTarget(InvalidInput):
    code = "private_target"


def _addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal: itself); empty when it does not."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in found})


def is_public(address: str) -> bool:
    """A global unicast address (IPv4-mapped IPv6 judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_webhook_target(url: str, *, allow_private: bool, resolve_required: bool) -> None:
    """``PrivateTarget`` when ``url``'s host is, or resolves to, an address that is not public
    (unless ``allow_private``); ``InvalidInput`` when it names no host, or, with
    ``resolve_required``, when the host does not resolve."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput(f"A webhook must be an http(s) URL, not {url!r}.") from None
    if not host:
        raise InvalidInput(f"A webhook URL must name a host, not {url!r}.")
    if allow_private:
        return
    addresses = _addresses(host, port or (443 if parts.scheme == "https" else 80))
    if not addresses and resolve_required:
        raise InvalidInput(f"The webhook's host {host} does not resolve.")
    private = [a for a in addresses if not is_public(a)]
    if private:
        raise PrivateTarget(
            f"The webhook's host {host} is a loopback, private or link-local address "
            f"({private[0]}); alerts go to public receivers unless {ALLOW_SETTING} is set."
        )
