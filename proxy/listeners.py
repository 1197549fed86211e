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


def _admin(raw: dict[str, Any]) -> ListenerConfig | None:
    """The admin listener's address when ``[admin]`` is configured (its port defaults to 8081)."""
    section = raw.get("admin")
    if not isinstance(section, dict):
        return None
    host, port = section.get("host", "127.0.0.1"), section.get("port", 8081)
    try:
        return ListenerConfig(host=host, port=port)
    except ValidationError:
        return None  # reported where [admin] is validated


def listener_conflicts(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key path, message)`` for every two listeners (gRPC, HTTP, admin) configured on the
    same host and port (read from the raw document, so a mistake elsewhere in ``[server]``
    hides nothing)."""
    section = raw.get("server")
    listeners = [
        ("gRPC", "server.grpc.port", _listener(section, "grpc")),
        ("HTTP", "server.http.port", _listener(section, "http")),
        ("admin", "admin.port", _admin(raw)),
    ]
    errors = []
    for index, (name, key, listener) in enumerate(listeners):
        for other_name, other_key, other in listeners[:index]:
            if listener is not None and other is not None and _overlap(other, listener):
                errors.append(
                    (
                        key,
                        f"the {name} listener can't share port {listener.port} with the "
                        f"{other_name} listener ({other_key}): give each its own port",
                    )
                )
    return errors


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
