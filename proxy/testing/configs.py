"""Configs for tests: the embedded default with a test's overrides, or inline TOML."""

from __future__ import annotations

import copy
import re
import tomllib
from importlib import resources
from typing import Any

from proxy.builder import embedded_default


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def proxy_config(
    overrides: dict[str, Any] | None = None, *, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The embedded default (or ``base``) with ``overrides`` merged in and loopback ports 0.

    Tables merge key by key; any other value (lists included) replaces; a
    value of None removes the key.
    """
    config = copy.deepcopy(base if base is not None else embedded_default())
    config = _merge(config, {"server": {"grpc": {"port": 0}, "http": {"port": 0}}})
    if "admin" in config:
        config = _merge(config, {"admin": {"port": 0}})
    return _merge(config, overrides or {})


def embedded_default_text(*, ephemeral_ports: bool = True) -> str:
    """The embedded default's TOML text, for tests that write a config file for a process;
    with every listener (gRPC, HTTP, admin) on a free port unless ``ephemeral_ports`` is off."""
    text = resources.files("proxy").joinpath("default.toml").read_text(encoding="utf-8")
    return re.sub(r"(?m)^port = \d+$", "port = 0", text) if ephemeral_ports else text


def toml_config(text: str) -> dict[str, Any]:
    """Parse a TOML config written inline in a test, with loopback ports 0 unless it sets them."""
    raw = tomllib.loads(text)
    server = raw.setdefault("server", {})
    for listener in ("grpc", "http"):
        server.setdefault(listener, {}).setdefault("port", 0)
    if isinstance(raw.get("admin"), dict):
        raw["admin"].setdefault("port", 0)
    return raw
