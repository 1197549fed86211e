"""Where a Redis store lives: the ``[access.state] store`` URL read once, and how to connect.

Three modes, named by the URL's scheme (``rediss`` instead of ``redis`` turns TLS on):

- **single**: ``redis://host:port/db``, ``rediss://...``, ``unix:///path.sock``;
- **cluster**: ``redis+cluster://host:port,host:port`` (seed nodes; the rest is discovered);
- **sentinel**: ``redis+sentinel://host:port,host:port/SERVICE`` (the sentinels and the
  name they know the master by; ``/SERVICE/DB`` picks a database).

Error messages never repeat the URL: it may carry a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379


class StoreMode(StrEnum):
    """How the proxy reaches its state."""

    MEMORY = "memory"
    SINGLE = "single"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"


_SCHEMES = {
    "redis": (StoreMode.SINGLE, False),
    "rediss": (StoreMode.SINGLE, True),
    "unix": (StoreMode.SINGLE, False),
    "redis+cluster": (StoreMode.CLUSTER, False),
    "rediss+cluster": (StoreMode.CLUSTER, True),
    "redis+sentinel": (StoreMode.SENTINEL, False),
    "rediss+sentinel": (StoreMode.SENTINEL, True),
}
#: What a bad store value is told (never the value itself).
EXPECTED = (
    "must be 'memory' or a redis://, rediss://, unix://, redis+cluster://host:port,... "
    "or redis+sentinel://host:port,.../SERVICE URL"
)


@dataclass(frozen=True, slots=True)
class StoreAddress:
    """A parsed store URL.

    :ivar mode: single, cluster or sentinel.
    :ivar tls: connect with TLS (a ``rediss`` scheme).
    :ivar url: the URL as given (single mode hands it to redis-py whole).
    :ivar nodes: cluster seed nodes or sentinels, ``(host, port)``.
    :ivar service: the master's name (sentinel).
    :ivar db: the database number (not in cluster mode).
    :ivar username: ACL user from the URL, if any.
    :ivar password: password from the URL, if any (prefer ``[access.state] password``).
    """

    mode: StoreMode
    tls: bool
    url: str = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def redacted(self) -> str:
        """The URL without user and password, for logs and ``check-config``."""
        scheme = self.url.partition("://")[0]
        if self.mode is StoreMode.SINGLE:
            return redacted_url(self.url)
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)
        path = f"/{self.service}" if self.service else ""
        if self.db:
            path += f"/{self.db}"
        return f"{scheme}://{hosts}{path}"


def redacted_url(url: str) -> str:
    """A single-mode Redis URL without its user and password, for logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "redis (unreadable URL)"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _node(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("a node is host:port or [IPv6]:port")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError("a node needs a host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("a node's port is a number from 1 to 65535")
    return host, int(port_text)


def parse_store_url(value: str) -> StoreAddress:
    """Read a store URL; ``ValueError`` (naming no part of it) when it is not one."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ValueError(EXPECTED)
    mode, tls = _SCHEMES[scheme]
    if mode is StoreMode.SINGLE:
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a bad port
        except ValueError:
            raise ValueError(EXPECTED) from None
        if scheme != "unix" and not parts.hostname:
            raise ValueError("a redis:// URL needs a host")
        return StoreAddress(mode, tls, value)
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    if query:
        raise ValueError(f"{scheme}:// URLs take no query; use the [access.state] keys")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts, userinfo = netloc, ""
    username, _, password = userinfo.partition(":")
    default = DEFAULT_SENTINEL_PORT if mode is StoreMode.SENTINEL else DEFAULT_PORT
    nodes = tuple(_node(part, default) for part in hosts.split(",") if part.strip())
    if not nodes:
        raise ValueError(f"{scheme}:// needs at least one host:port")
    segments = [unquote(s) for s in path.split("/") if s]
    service = None
    if mode is StoreMode.SENTINEL:
        if not segments:
            raise ValueError("redis+sentinel:// needs the master's service name: .../SERVICE")
        service, segments = segments[0], segments[1:]
    if len(segments) > 1 or (segments and not segments[0].isdigit()):
        raise ValueError(
            f"the path of a {scheme}:// URL is {'/SERVICE[/DB]' if service else '[/0]'}"
        )
    db = int(segments[0]) if segments else 0
    if mode is StoreMode.CLUSTER and db:
        raise ValueError("Redis Cluster has database 0 only")
    return StoreAddress(
        mode,
        tls,
        value,
        nodes=nodes,
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to authenticate and encrypt, beside the URL (from ``[access.state]``).

    :ivar username: ACL user (overrides the URL's).
    :ivar password: password (overrides the URL's).
    :ivar sentinel_password: the sentinels' own password (``requirepass`` in sentinel.conf).
    :ivar ca_file: CA bundle that signed the server certificates (default: the system's).
    :ivar cert_file: client certificate, for servers that ask for one.
    :ivar key_file: the client certificate's private key.
    :ivar check_hostname: verify the server certificate names the host connected to.
    """

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def client_kwargs(self, address: StoreAddress, timeout: float) -> dict[str, Any]:
        """Keyword arguments for a redis-py client of ``address`` (timeouts, auth, TLS)."""
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        username = self.username or address.username
        password = self.password or address.password
        if username:
            kwargs["username"] = username
        if password:
            kwargs["password"] = password
        if address.tls:
            kwargs.update(self.tls_kwargs())
        return kwargs

    def tls_kwargs(self) -> dict[str, Any]:
        """redis-py's ``ssl_*`` arguments."""
        kwargs: dict[str, Any] = {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": self.check_hostname,
        }
        if self.ca_file:
            kwargs["ssl_ca_certs"] = self.ca_file
        if self.cert_file:
            kwargs["ssl_certfile"] = self.cert_file
        if self.key_file:
            kwargs["ssl_keyfile"] = self.key_file
        return kwargs
