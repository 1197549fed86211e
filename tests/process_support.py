"""Running ``license-proxy`` as a real process in tests: config files, start, listening ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxy.testing import embedded_default_text

ROOT = Path(__file__).resolve().parent.parent
LICENSE_PROXY = Path(sys.executable).with_name("license-proxy")
SERVING = re.compile(rb"serving gRPC on [\d.:\[\]a-f]+:(\d+) and HTTP on [\d.:\[\]a-f]+:(\d+)")


def default_toml(*, ports: bool = True) -> str:
    """The embedded default's text, on ephemeral ports unless ``ports`` is False."""
    return embedded_default_text(ephemeral_ports=ports)


def toml_value(value: Any) -> str:
    """A TOML value for the strings, numbers, lists and tables a test config holds."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON's string and number syntax is TOML's for the ASCII values tests write.
    return json.dumps(value)


def toml_table(name: str, values: dict[str, Any], *, array: bool = False) -> str:
    """``[name]`` (``[[name]]`` for an array of tables) with ``values`` as ``key = value`` lines."""
    header = f"[[{name}]]" if array else f"[{name}]"
    lines = [header] + [f"{key} = {toml_value(v)}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


async def start(
    args: Sequence[str], *, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """``license-proxy ARGS`` with its standard error piped (run from the checkout)."""
    return await asyncio.create_subprocess_exec(
        str(LICENSE_PROXY),
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def listening(process: asyncio.subprocess.Process, seconds: float = 30) -> tuple[int, int]:
    """The gRPC and HTTP ports the process reports once it serves."""
    assert process.stderr is not None
    seen = b""
    async with asyncio.timeout(seconds):
        while True:
            line = await process.stderr.readline()
            assert line, f"the proxy exited before listening:\n{seen.decode()}"
            seen += line
            match = SERVING.search(line)
            if match:
                return int(match[1]), int(match[2])


async def stop(process: asyncio.subprocess.Process) -> None:
    """Kill the process if it still runs (a test's cleanup)."""
    if process.returncode is None:
        process.kill()
        await process.wait()
