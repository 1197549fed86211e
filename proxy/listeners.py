"""The two listeners' addresses: they must not collide, and a port that is taken says which
listener wanted it and which key (or flag) moves it."""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from pydantic import ValidationError

from proxy.config import ListenerConfig, ServerConfig

#: What moves each listener, in the config file and on the command line.
LISTENER_KEYS = {
    "gRPC": ("server.grpc.port", "--grpc-port"),
    "HTTP": ("server.http.port", "--http-port"),
}


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _overlap(a: ListenerConfig, b: ListenerConfig) -> bool:
    """True when both listeners would bind the same port on a common address."""
    if a.port == 0 or a.port != b.port:
        return False
    return a.host == b.host or _wildcard(a.host) or _wildcard(b.host)


def _listener(section: Any, name: str) -> ListenerConfig | None:
    default = ServerConfig.model_fields[name].default
    given = section.get(name) if isinstance(section, dict) else None
    if not isinstance(given, dict):
        return default if isinstance(default, ListenerConfig) else None
    try:
        return default.model_copy(
            update=ListenerConfig.model_validate(given).model_dump(exclude_unset=True)
        )
    except ValidationError:
        return None  # reported where [server] is validated


def listener_conflicts(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key path, message)`` when gRPC and HTTP are configured on the same host and port
    (read from the raw document, so a mistake elsewhere in ``[server]`` hides nothing)."""
    section = raw.get("server")
    grpc, http = _listener(section, "grpc"), _listener(section, "http")
    if grpc is None or http is None or not _overlap(grpc, http):
        return []
    return [
        (
            "server.http.port",
            f"the HTTP listener can't share port {http.port} with the gRPC listener "
            f"(server.grpc.port): give each its own port",
        )
    ]


def listen_error(listener: str, host: str, port: int, cause: BaseException) -> OSError:
    """The error a listener that can't bind is reported with: which one, where, and what
    to change (``listener`` is ``"gRPC"`` or ``"HTTP"``)."""
    key, flag = LISTENER_KEYS[listener]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    code = getattr(cause, "errno", None)
    if code == errno.EADDRINUSE:
        reason = "the port is already in use"
    elif code == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    elif code == errno.EADDRNOTAVAIL:
        reason = "no interface of this machine has that address"
    else:
        reason = "the port is in use, or the address is not this machine's"
    return OSError(
        f"the {listener} listener cannot bind {where}: {reason}; change {key} or pass {flag}"
    )


__all__ = ["LISTENER_KEYS", "listen_error", "listener_conflicts"]
