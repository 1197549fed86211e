"""Command-line settings that win over the config file: ``serve --host H --grpc-port P
--http-port P``. A config file replaces the whole embedded default, so without them
moving one port meant copying the whole example."""

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
    *, host: str | None = None, grpc_port: int | None = None, http_port: int | None = None
) -> dict[str, Any]:
    """The ``[server]`` overrides the listener flags ask for (``--host`` moves both)."""
    overrides: dict[str, Any] = {}
    for name, listener_port in (("grpc", grpc_port), ("http", http_port)):
        listener: dict[str, Any] = {}
        if host is not None:
            listener["host"] = host
        if listener_port is not None:
            listener["port"] = listener_port
        if listener:
            overrides[name] = listener
    return overrides


def with_server_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config document with ``overrides`` merged into its ``[server]`` table
    (nested tables merge key by key). A malformed ``[server]`` is left for validation."""
    if not overrides:
        return raw
    document = copy.deepcopy(raw)
    server = document.setdefault("server", {})
    if not isinstance(server, dict):
        return document

    def merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            elif isinstance(value, dict):
                target[key] = copy.deepcopy(value)
            else:
                target[key] = value

    merge(server, overrides)
    return document


__all__ = ["listener_overrides", "port", "with_server_overrides"]
