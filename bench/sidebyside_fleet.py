"""The processes bench.sidebyside measures, each started on loopback with ephemeral ports.

The Axinom emulator (bench.upstream), the bare forwarder in front of it
(bench.forwarder), the bare handlers (bench.baseline), and the proxy twice: on its
full vendor path (:func:`vendor_config`) and on its embedded default
(:func:`default_config`); with ``--before``, the same two from another checkout.
Each writes its output to a file (no pipe for this process to drain under load); the
proxy's admin listener (its /metrics) is found by the port it logs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, Server, console_script, stop_server
from bench.sidebyside_paths import DEVICE, ISSUER, SIGNING_KEY_ID, Material
from bench.vendors import COM_KEY, COM_KEY_ID, axinom_policy_toml
from plugins.vendors.axinom.emulator import urls

SERVING = r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+)"
ADMIN = r"serving the admin API on \S+:(\d+)"


def _embedded_default() -> str:
    """proxy/default.toml with every listener on an ephemeral port (the admin listener, with
    /metrics, included) and no access log; the decision log stays as it is by default."""
    text = (ROOT / "proxy" / "default.toml").read_text()
    for port in ("50051", "8080", "8081"):
        if f"port = {port}" not in text:
            raise RuntimeError(f"proxy/default.toml no longer has port = {port}")
        text = text.replace(f"port = {port}", "port = 0")
    return text + "\n[log]\naccess = false\n"


def default_config(folder: Path, name: str) -> Path:
    """The embedded default, on ephemeral ports, no access log."""
    path = folder / f"{name}.toml"
    path.write_text(_embedded_default())
    return path


def vendor_config(folder: Path, name: str, emulator_url: str) -> Path:
    """The full vendor path: an RS256 issuer, IP and device allow-lists, a policy electing
    the Axinom backend for the token's ``vendor`` claim (the default's ClearKey policy stays
    as the fallback), the backend routed to the emulator."""
    path = folder / f"{name}.toml"
    path.write_text(
        _embedded_default()
        + f"""
[[auth.issuers]]
issuer = "{ISSUER}"
audiences = ["license-proxy"]
algorithms = ["RS256"]

[[auth.issuers.keys]]
id = "{SIGNING_KEY_ID}"
public_key = "file:bench-rs256.pem"

[access.ip]
allow = ["127.0.0.0/8"]

[access.device]
claim = "device"
allow = ["{DEVICE}"]

"""
        + axinom_policy_toml(urls(emulator_url))
    )
    return path


async def launch(
    name: str, argv: Sequence[str], pattern: str, folder: Path, env: dict[str, str]
) -> tuple[Server, re.Match[str]]:
    """Start ``argv`` with its output in ``folder/NAME.log`` (no pipe to drain under load)
    and wait for ``pattern`` there; the server and the match."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            break
        if process.returncode is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        await asyncio.sleep(0.05)
    if pattern == SERVING:
        return Server(process, int(match[1]), int(match[2])), match
    return Server(process, 0, 0), match


@dataclass
class Target:
    """A started middle process and how to reach it."""

    server: Server
    http_base: str
    grpc_target: str | None = None
    metrics_url: str | None = None


class Fleet:
    """The subprocesses of one run, started on demand, stopped together."""

    def __init__(self, folder: Path, material: Material, before: str | None) -> None:
        self.folder = folder
        self.material = material
        self.before = before
        self.targets: dict[str, Target] = {}

    async def target(self, name: str) -> Target:
        """The target ``name`` (``emulator``, ``forwarder``, ``baseline``, ``vendor``,
        ``default``, or ``before-vendor`` / ``before-default``), started on first use."""
        if name not in self.targets:
            self.targets[name] = await self._start(name)
        return self.targets[name]

    async def _start(self, name: str) -> Target:
        folder = self.folder
        keys = {
            "BENCH_COM_KEY": base64.b64encode(COM_KEY).decode(),
            "BENCH_COM_KEY_ID": COM_KEY_ID,
        }
        if name == "emulator":
            server, match = await launch(
                name, [sys.executable, "-m", "bench.upstream"], r"upstream on (\S+)", folder, keys
            )
            return Target(server, match[1])
        if name == "forwarder":
            emulator = await self.target("emulator")
            env = {
                "BENCH_UPSTREAM": emulator.http_base,
                "BENCH_AXDRM_MESSAGE": self.material.axinom_message,
            }
            server, match = await launch(
                name, [sys.executable, "-m", "bench.forwarder"], r"forwarding on (\S+)", folder, env
            )
            return Target(server, match[1])
        if name == "baseline":
            server, _ = await launch(
                name, [sys.executable, "-m", "bench.baseline"], SERVING, folder, {}
            )
            return Target(server, server.http_url, server.grpc_target)
        if name.removeprefix("before-") == "vendor":
            emulator = await self.target("emulator")
            (folder / "bench-rs256.pem").write_bytes(self.material.public_pem())
            config = vendor_config(folder, name, emulator.http_base)
        else:
            config = default_config(folder, name)
        env: dict[str, str] = {}
        if name.startswith("before-") and self.before:
            # The other checkout as it ran: on grpc's own defaults, not on the
            # GRPC_EXPERIMENTS this checkout's proxy package sets (proxy/grpc_env.py).
            env = {
                "PYTHONPATH": self.before,
                "GRPC_EXPERIMENTS": os.environ.get("BENCH_BEFORE_GRPC_EXPERIMENTS", ""),
            }
        argv = [console_script("license-proxy"), "serve", "--config", str(config)]
        server, _ = await launch(name, argv, SERVING, folder, env)
        # The admin listener starts (and logs its port) before the player listeners.
        admin = re.search(ADMIN, (folder / f"{name}.log").read_text(errors="replace"))
        metrics = f"http://127.0.0.1:{admin[1]}/metrics" if admin else None
        return Target(server, server.http_url, server.grpc_target, metrics)

    async def stop(self) -> None:
        """Stop every process started."""
        for target in reversed(list(self.targets.values())):
            await stop_server(target.server)
