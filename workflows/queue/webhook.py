"""The optional webhook: one POST of the job's final view when it ends, to a public address.

Delivery is best effort and at most once (a worker that dies between ending the job and
posting does not post): failures are logged and counted, never raised, and the timeout is
short so a slow receiver cannot hold a worker.

A job's ``webhook_url`` is user input that makes a worker open a connection. Aimed inside
(a cloud metadata service, a database on the private network, a port on loopback) it would
be a server-side request forgery, so every address its host resolves to must be public:
:func:`refusal` names the class of one that is not (loopback, link-local, private, shared
carrier-grade NAT, unspecified, multicast, reserved, cloud metadata, and the IPv6 forms that
embed such an IPv4 address). :meth:`WebhookPolicy.check_url` runs at submission (the HTTP
layer answers 422) and again when sending, since a DNS answer can change in between; the
send then connects to an address it checked, while the Host header, TLS SNI and certificate
verification keep the host name, so a second lookup cannot swap the address. Redirects are
not followed: a 3xx answer is a failed delivery.

Operators with internal receivers list them in ``REMASK_WEBHOOK_ALLOW`` (read by the HTTP
layer and by every worker): comma-separated host names (exact; any address they resolve to)
and IP addresses or CIDR ranges (a resolved address inside one is allowed), e.g.
``hooks.internal,10.20.0.0/16,127.0.0.1``. A cloud metadata address is allowed only by a
range that contains it, never by a host name.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("remask.queue")

ALLOW_ENV = "REMASK_WEBHOOK_ALLOW"
RESOLVE_TIMEOUT_S = 2.0  # longest DNS lookup of a webhook host, at submission and at send time
MAX_URL_CHARS = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# instance metadata services: AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (IPv4), AWS
# (IPv6, a ULA), AWS ECS task metadata, Alibaba Cloud (in 100.64/10), Oracle's older address
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192"))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598; neither private nor global to ipaddress
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local translators
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")

# lookups run here, so a name that does not resolve costs its caller RESOLVE_TIMEOUT_S at
# most; a lookup that outlives its caller is cancelled if it has not started, and at most
# this many threads are ever stuck in getaddrinfo
_resolvers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class WebhookRefused(ValueError):
    """A webhook URL the policy does not allow; the message says why (for a host name, the
    class of address it resolves to, never the address: that would map internal DNS)."""


def refusal(addr: IPAddress) -> str | None:
    """The class of ``addr`` that a webhook may not reach (``"a loopback address"``), or None."""
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_ipv4(addr)
        if inner is not None:  # reaches the IPv4 address it carries
            why = refusal(inner)
            return f"an IPv6 form of {why}" if why else None
        if addr in _NAT64_LOCAL:
            return "a local NAT64 address"
        if addr.is_site_local:
            return "a site-local address"
    return next((why for refused, why in _REFUSED_CLASSES if refused(addr)), None)


# the classes of address of either version that a webhook may not reach, checked in this order
_REFUSED_CLASSES: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda a: a.is_loopback, "a loopback address"),
    (lambda a: a.is_link_local, "a link-local address"),
    (lambda a: a.is_unspecified, "the unspecified address"),
    (lambda a: a.is_multicast, "a multicast address"),
    (lambda a: a in _SHARED, "a shared (carrier-grade NAT) address"),
    (lambda a: a.is_reserved, "a reserved address"),  # before private: ipaddress counts 240.0.0.0/4 as both
    (lambda a: a.is_private, "a private address"),
    (lambda a: not a.is_global, "not a public address"),
)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address stands for."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect (``addresses``, in resolution order) and what
    to send (the host name for the Host header, TLS SNI and certificate checks)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class WebhookPolicy:
    """Which webhook destinations are allowed: public addresses, plus the operator's list."""

    allow_hosts: frozenset[str] = frozenset()  # host names allowed whatever they resolve to
    allow_networks: tuple[IPNetwork, ...] = ()  # addresses allowed even if internal
    resolve_timeout_s: float = RESOLVE_TIMEOUT_S

    @classmethod
    def parse(cls, entries: str | Iterable[str], resolve_timeout_s: float = RESOLVE_TIMEOUT_S) -> WebhookPolicy:
        """A policy from ``host,cidr,...`` (or a list of entries); ValueError names a bad entry."""
        if isinstance(entries, str):
            entries = entries.split(",")
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{ALLOW_ENV}: {entry!r} is neither a host name nor an IP address or range")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks), resolve_timeout_s)

    @classmethod
    def from_env(cls) -> WebhookPolicy:
        """The policy of ``$REMASK_WEBHOOK_ALLOW`` (empty or unset: public addresses only)."""
        return cls.parse(os.environ.get(ALLOW_ENV, ""))

    def allows(self, host: str, addr: IPAddress) -> bool:
        """Whether the operator allows ``addr`` (which ``host`` resolved to) although internal."""
        inner = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
        if any(a in net for net in self.allow_networks for a in (addr, inner) if a is not None):
            return True
        return host in self.allow_hosts and addr not in METADATA_ADDRESSES and inner not in METADATA_ADDRESSES

    def check_url(self, url: object) -> Target:
        """Parse ``url``, resolve its host and check every address; raises :class:`WebhookRefused`.

        Blocks for up to ``resolve_timeout_s`` (a DNS lookup): call it off an event loop.
        """
        scheme, host, port, path = _split(url)
        if host in METADATA_HOSTS and host not in self.allow_hosts:
            raise WebhookRefused(f"host {host!r} is a cloud metadata service")
        addresses = resolve(host, port, self.resolve_timeout_s)
        literal = _literal(host) is not None
        for addr in addresses:
            why = None if self.allows(host, addr) else refusal(addr)
            if why is not None:
                raise WebhookRefused(f"{addr} is {why}" if literal else f"host {host!r} resolves to {why}")
        return Target(scheme, host, port, path, tuple(str(a) for a in addresses))


def _split(url: object) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or :class:`WebhookRefused`."""
    if not isinstance(url, str) or not url:
        raise WebhookRefused("an http:// or https:// URL is required")
    if len(url) > MAX_URL_CHARS:
        raise WebhookRefused(f"at most {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise WebhookRefused("spaces and control characters are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or a malformed IPv6 literal
        raise WebhookRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("an http:// or https:// URL with a host is required")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("credentials in the URL are not allowed (they would be logged and shown)")
    if port == 0:
        raise WebhookRefused("port 0 is not a port to connect to")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii():  # the request line is ASCII; the host may be an IDN (sent as IDNA)
        raise WebhookRefused("percent-encode non-ASCII characters of the path and query")
    return parts.scheme, parts.hostname.rstrip("."), port or (443 if parts.scheme == "https" else 80), path


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _getaddrinfo(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver; tests replace this)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve(host: str, port: int, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[IPAddress]:
    """Every address ``host`` resolves to, without duplicates; waits ``timeout_s`` at most."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    future = _resolvers.submit(_getaddrinfo, host, port)
    try:
        raw = future.result(timeout=timeout_s)
    except FutureTimeout:
        future.cancel()
        raise WebhookRefused(f"host {host!r} did not resolve within {timeout_s:g} s") from None
    except (OSError, UnicodeError, ValueError):
        raise WebhookRefused(f"host {host!r} does not resolve") from None
    addresses: list[IPAddress] = []
    for text in raw:
        addr = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (link-local: refused)
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise WebhookRefused(f"host {host!r} does not resolve")
    return addresses


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to one checked address; ``host`` stays the name (Host header)."""

    def __init__(self, target: Target, address: str, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to one checked address; SNI and the certificate check use the host name."""

    def __init__(self, target: Target, address: str, timeout_s: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s, context=context)
        self.address, self.context = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.host)


class DeliveryCounts:
    """Webhook outcomes of this process: delivered (2xx), failed, refused by the policy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"delivered": 0, "failed": 0, "refused": 0}

    def add(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self._counts)


deliveries = DeliveryCounts()


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 5.0, policy: WebhookPolicy | None = None,
                 context: ssl.SSLContext | None = None) -> bool:
    """POST ``payload`` as JSON to ``url`` if ``policy`` allows it (default: from the environment);
    True on a 2xx answer. Never raises: a refusal or a failure is logged and counted.

    ``context`` verifies https receivers (default: the system's trust store).
    """
    job = payload.get("id")
    try:
        policy = policy or WebhookPolicy.from_env()
        target = policy.check_url(url)
    except ValueError as exc:  # WebhookRefused, or a bad allow-list in the environment
        deliveries.add("refused")
        log.warning("webhook for job %s refused: %s", job, exc)
        return False
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "remask-queue"}
    status, error = None, "no address answered in time"
    deadline = time.monotonic() + timeout_s  # for all addresses together: a worker waits this long at most
    for address in target.addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn = (_PinnedHTTPS(target, address, left, context or ssl.create_default_context())
                if target.scheme == "https" else _PinnedHTTP(target, address, left))
        try:
            try:
                conn.connect()
            except OSError as exc:  # nothing sent yet: the next address may answer
                error = str(exc) or type(exc).__name__
                continue
            try:
                conn.request("POST", target.path, body=body, headers=headers)
                status = conn.getresponse().status
            except (OSError, ValueError, http.client.HTTPException) as exc:  # sent, perhaps: never twice
                error = str(exc) or type(exc).__name__
            break
        finally:
            conn.close()
    if status is None or not 200 <= status < 300:
        deliveries.add("failed")
        log.warning("webhook for job %s to host %s failed: %s", job, target.host,
                    f"answered {status}" if status is not None else error)
        return False
    deliveries.add("delivered")
    return True
