"""Which callback URLs the service will call: the SSRF rule of docs/security.md, in one place.

A callback URL must be ``http`` or ``https`` with no user name or password, and every address its
host resolves to must be global (not loopback, private, link-local, multicast, reserved,
unspecified, shared or IPv4-mapped, whatever the spelling: ``http://2130706433/`` resolves to
127.0.0.1), unless the host or a network holding the address is in ``TRIAGE_CALLBACK_ALLOW``.
Intake checks the URL (`producer.client`); the worker checks again the address it connects to
(`worker.writeback.targets.safe_connect`), so a name that resolves elsewhere later (DNS
rebinding) gains nothing. Standard library only: the producer stays light.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: NAT64's well-known prefix: its addresses carry an IPv4 address in their last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class CallbackRefused(ValueError):
    """A callback URL, or an address its host resolves to, that the service will not call. The
    message names the URL without credentials or query (`redact`)."""


@dataclass(frozen=True)
class Allow:
    """`TRIAGE_CALLBACK_ALLOW`: host names, and networks (an address is a network of one)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allow:
        """Each entry a host name, an address or a CIDR; raises `ValueError` naming a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            value = entry.strip()
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
                continue
            except ValueError:
                pass
            if not value or any(c in value for c in "/:@ \t[]"):
                raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR")
            hosts.add(_host_form(value))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        if _host_form(host) in self.hosts:
            return True
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(a in net for net in self.networks for a in (address, mapped) if a is not None)


def target(url: str) -> tuple[str, int]:
    """The (host, port) `url` would be sent to; `CallbackRefused` when its form is refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise CallbackRefused(f"callback {redact(url)} is not http or https")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused(f"callback {redact(url)} carries a user name or password")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise CallbackRefused(f"callback {redact(url)} has no valid port") from exc
    if not parts.hostname:
        raise CallbackRefused(f"callback {redact(url)} names no host")
    return parts.hostname, port


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a literal resolves to itself); raises `OSError`."""
    return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


async def aresolve(host: str, port: int) -> list[str]:
    """`resolve` without blocking the event loop (the loop runs the lookup in its executor)."""
    loop = asyncio.get_running_loop()
    return _addresses(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))


def check_addresses(url: str, host: str, addresses: Iterable[str], allow: Allow) -> None:
    """Refuse (`CallbackRefused`) when any address is not global and not allowed."""
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])  # fe80::1%eth0: the scope aside
        why = not_global(address)
        if why is not None and not allow.allows(host, address):
            raise CallbackRefused(
                f"callback {redact(url)} resolves to {address} ({why}); "
                "list the host or a network in TRIAGE_CALLBACK_ALLOW to allow it"
            )


def check(url: str, allow: Allow, resolved: dict[tuple[str, int], list[str]] | None = None) -> None:
    """The whole intake check of one URL. `resolved` caches lookups across a batch."""
    host, port = target(url)
    cache = {} if resolved is None else resolved
    if (host, port) not in cache:
        try:
            cache[host, port] = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise CallbackRefused(f"callback {redact(url)}: its host does not resolve") from exc
    check_addresses(url, host, cache[host, port], allow)


async def acheck(
    url: str, allow: Allow, resolved: dict[tuple[str, int], list[str]] | None = None
) -> None:
    """`check` for asyncio code: the lookup does not block the loop."""
    host, port = target(url)
    cache = {} if resolved is None else resolved
    if (host, port) not in cache:
        try:
            cache[host, port] = await aresolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise CallbackRefused(f"callback {redact(url)}: its host does not resolve") from exc
    check_addresses(url, host, cache[host, port], allow)


def not_global(address: IPAddress) -> str | None:
    """Why `address` is not a public one (``"loopback"``, ``"private"``...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "IPv4-mapped"
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (why := not_global(embedded)) is not None:
            return f"carries {embedded}, {why}"
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not global"


def redact(url: str) -> str:
    """`url` without user name, password, query or fragment: what errors and logs may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def scrub_urls(text: str) -> str:
    """`text` with every URL in it `redact`ed: for reasons and messages that quote URLs."""
    return _URL.sub(lambda m: redact(m.group(0)), text)


def _addresses(infos: Iterable[tuple[object, ...]]) -> list[str]:
    out: list[str] = []
    for info in infos:
        sockaddr = info[4]
        if isinstance(sockaddr, tuple) and sockaddr and str(sockaddr[0]) not in out:
            out.append(str(sockaddr[0]))
    return out


def _host_form(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
