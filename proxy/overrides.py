"""Command-line settings that win over the config file: ``serve --host H --grpc-port P
--http-port P --admin-port P``. A config file replaces the whole embedded default, so
without them moving one port meant copying the whole example."""

from __future__ import annotations

import argparse
import copy
from typing import Any


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return value


def listener_overrides(
    *,
    host: str | None = None,
    grpc_port: int | None = None,
    http_port: int | None = None,
    admin_port: int | None = None,
) -> dict[str, Any]:
    """The config overrides the listener flags ask for, as a partial document (``--host``
    moves the player-facing listeners; the admin listener keeps its own, loopback, host)."""
    server: dict[str, Any] = {}
    for name, listener_port in (("grpc", grpc_port), ("http", http_port)):
        listener: dict[str, Any] = {}
        if host is not None:
            listener["host"] = host
        if listener_port is not None:
            listener["port"] = listener_port
        if listener:
            server[name] = listener
    overrides: dict[str, Any] = {"server": server} if server else {}
    if admin_port is not None:
        overrides["admin"] = {"port": admin_port}
    return overrides


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config document with ``overrides`` merged in (nested tables merge key
    by key). A malformed table is left for validation, and an ``[admin]`` override only moves
    an admin listener the config has: a flag never turns one on."""
    if not overrides:
        return raw
    document = copy.deepcopy(raw)
    changes = dict(overrides)
    if not isinstance(document.get("admin"), dict):
        changes.pop("admin", None)

    def merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            elif isinstance(value, dict):
                target[key] = copy.deepcopy(value)
            else:
                target[key] = value

    for section, values in changes.items():
        target = document.setdefault(section, {})
        if isinstance(target, dict):
            merge(target, values)
    return document


__all__ = ["listener_overrides", "port", "with_overrides"]
