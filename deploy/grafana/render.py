"""Render ``license-proxy.json``'s panels from a real run: ``python deploy/grafana/render.py``.

No Grafana ships in Debian, PyPI or npm, so this draws the dashboard's panels
with matplotlib from the same PromQL, answered by a real Prometheus (Debian's
``prometheus`` package) that scraped a real proxy:

1. the vendor emulators of ``license-proxy serve --sandbox`` (``proxy.testing.sandbox``)
   and a JWKS endpoint start in this process;
2. ``license-proxy serve`` runs as a subprocess with the sandbox's config (one
   backend per vendor, the embedded default's ClearKey) plus an issuer whose keys
   come from that JWKS endpoint; Prometheus scrapes its ``/metrics`` every second;
3. players call for ``--minutes`` (Widevine, PlayReady and ClearKey licenses,
   renewals, some refused tokens); midway one vendor fails (its circuit opens)
   and later the JWKS endpoint fails for a while (key fetch failures);
4. each panel's queries go to Prometheus' HTTP API (``$__rate_interval`` and
   ``$__range`` filled in as Grafana would) and the answers are drawn in the
   dashboard's layout to ``docs/img/dashboard.png``.

Needs ``apt-get install prometheus`` and ``pip install matplotlib`` (``make dashboard``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import tomllib
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from proxy.challenge import samples  # noqa: E402
from proxy.testing.emulator import start_emulator  # noqa: E402
from proxy.testing.sandbox import Sandbox  # noqa: E402
from proxy.tokens import development_token  # noqa: E402

DASHBOARD = Path(__file__).with_name("license-proxy.json")
OUTPUT = ROOT / "docs" / "img" / "dashboard.png"
JWKS_ISSUER = "https://idp.sandbox.example/"
RATE_INTERVAL = "10s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Jwks:
    """An identity provider's JWKS on loopback that can be made to fail."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.failing = False
        self.app = web.Application()
        self.app.router.add_get("/jwks.json", self._jwks)

    async def _jwks(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=503, text="down for maintenance")
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="idp-1", use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]}, headers={"Cache-Control": "max-age=10"})

    def token(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        payload = {"iss": JWKS_ISSUER, "aud": "license-proxy", "iat": now, "exp": now + 3600}
        return jwt.encode({**payload, **claims}, self.key, "RS256", headers={"kid": "idp-1"})


def proxy_config(
    sandbox: Sandbox, jwks_url: str, http_port: int, grpc_port: int, admin_port: int
) -> str:
    text = resources.files("proxy").joinpath("default.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    raw["server"]["http"]["port"] = http_port
    raw["server"]["grpc"]["port"] = grpc_port
    raw["admin"]["port"] = admin_port  # /metrics is served there
    raw["log"] = {"access": False}
    raw["audit"] = {"stream": False}
    raw["auth"]["issuers"].append(
        {
            "issuer": JWKS_ISSUER,
            "audiences": ["license-proxy"],
            "algorithms": ["RS256"],
            "jwks_uri": jwks_url,
            "refresh": {"interval": "10s", "min_interval": "5s", "retry_interval": "2s"},
        }
    )
    config = sandbox.config(raw)
    config["backends"]["widevine_cloud"]["circuit_breaker"] = {
        "failure_threshold": 3,
        "reset_timeout": "5s",
    }
    return toml_text(config)


def toml_value(value: Any) -> str:
    """``value`` as a TOML value: tables inline, strings and numbers as JSON writes them
    (JSON's escapes and literals are TOML's too)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_text(doc: dict[str, Any]) -> str:
    """A config document as TOML, one top-level key per line."""
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in doc.items())


async def players(
    url: str, stop_at: float, jwks: Jwks, sandbox: Sandbox, started: float, minutes: float
) -> int:
    """Call for licenses until ``stop_at``, with the faults of each phase; the calls made."""
    kid = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
    widevine_new = samples.widevine_license_request(key_ids=[kid], content_id=b"movie-1")
    widevine_renewal = samples.widevine_license_request(
        key_ids=[kid], content_id=b"movie-1", request_type=2
    )
    playready = samples.playready_challenge(samples.wrm_header("4.3.0.0", [kid]))
    clearkey = samples.clearkey_request(kid)
    rng = random.Random(7)
    calls = 0

    def pick() -> tuple[str, bytes, str]:
        roll = rng.random()
        vendor = rng.choice(["axinom", "axinom", "verimatrix", "azure", "widevine_cloud"])
        if roll < 0.30:
            return "clearkey", clearkey, jwks.token({"sub": f"viewer-{rng.randint(1, 500)}"})
        token = development_token({"sub": f"viewer-{rng.randint(1, 500)}", "vendor": vendor})
        if roll < 0.33:
            return "widevine", widevine_new, token[:-6] + "AAAAAA"  # a forged signature
        if roll < 0.36:
            return "clearkey", clearkey, ""  # no token
        if roll < 0.50 and vendor in ("axinom", "verimatrix"):
            return "playready", playready, token
        if roll < 0.62:
            return "widevine", widevine_renewal, token
        return "widevine", widevine_new, token

    async with aiohttp.ClientSession() as http:

        async def player() -> None:
            nonlocal calls
            while time.monotonic() < stop_at:
                drm, body, token = pick()
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(
                        f"{url}/v1/licenses/{drm}", data=body, headers=headers
                    ) as response:
                        await response.read()
                calls += 1
                await asyncio.sleep(rng.uniform(0.02, 0.12))

        async def faults() -> None:
            span = minutes * 60
            await asyncio.sleep(span * 0.35)
            sandbox["widevine_cloud"].fault.set("error", status=503)
            await asyncio.sleep(span * 0.2)
            sandbox["widevine_cloud"].fault.clear()
            await asyncio.sleep(span * 0.1)
            jwks.failing = True
            await asyncio.sleep(span * 0.15)
            jwks.failing = False

        fault_task = asyncio.create_task(faults())
        await asyncio.gather(*(player() for _ in range(8)))
        fault_task.cancel()
    return calls


async def query(http: aiohttp.ClientSession, base: str, expr: str, start: float, end: float,
                instant: bool) -> list[dict[str, Any]]:  # fmt: skip
    if instant:
        params = {"query": expr, "time": str(end)}
        path = "/api/v1/query"
    else:
        params = {"query": expr, "start": str(start), "end": str(end), "step": "2"}
        path = "/api/v1/query_range"
    async with http.get(base + path, params=params) as response:
        doc = await response.json()
    if doc.get("status") != "success":
        raise RuntimeError(f"{expr}: {doc}")
    return list(doc["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def draw(panels: list[dict[str, Any]], answers: list[list[tuple[str, list[Any]]]],
         start: float, output: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("dark_background")
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(16, 3.1 * rows), facecolor="#111217")
    fig.suptitle(
        "License proxy: the dashboard's panels from a sandbox run "
        "(deploy/grafana/license-proxy.json)",
        color="#d8d9da",
        fontsize=13,
        x=0.01,
        ha="left",
    )
    for ax, panel, series in zip(axes.flat, panels, answers, strict=False):
        ax.set_facecolor("#181b1f")
        ax.set_title(panel["title"], loc="left", fontsize=10, color="#d8d9da")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        if panel["type"] == "bargauge":
            names = [name for name, _ in series]
            values = [float(points[-1][1]) for _, points in series]
            ax.barh(names, values, color="#73bf69")
            ax.invert_yaxis()
            for i, value in enumerate(values):
                ax.text(value, i, f" {value:.0f}", va="center", fontsize=7, color="#d8d9da")
            continue
        for name, points in series:
            xs = [(float(t) - start) / 60 for t, _ in points]
            ys = [float(v) if v not in ("NaN", "+Inf", "-Inf") else float("nan") for _, v in points]
            if panel["type"] == "state-timeline":
                ax.step(xs, ys, where="post", label=name, linewidth=1.4)
                ax.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
            else:
                ax.plot(xs, ys, label=name, linewidth=1.1)
        ax.set_xlabel("minutes into the run", fontsize=7, color="#8e8e8e")
        if unit == "s":
            ax.set_ylabel("seconds", fontsize=7, color="#8e8e8e")
        elif unit == "reqps":
            ax.set_ylabel("per second", fontsize=7, color="#8e8e8e")
        if series:
            ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.3)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90, facecolor=fig.get_facecolor())


async def main_async(args: argparse.Namespace) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus is not installed (apt-get install prometheus)")
    dashboard = json.loads(DASHBOARD.read_text())
    sandbox = await Sandbox().start()
    jwks = Jwks()
    jwks_server = await start_emulator(jwks.app)
    work = Path(tempfile.mkdtemp(prefix="dashboard-"))
    http_port, grpc_port, admin_port, prom_port = (free_port() for _ in range(4))
    config = work / "proxy.toml"
    jwks_url = f"{jwks_server.url}/jwks.json"
    config.write_text(proxy_config(sandbox, jwks_url, http_port, grpc_port, admin_port))
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: license-proxy\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{admin_port}']\n"
    )
    log = (work / "proxy.log").open("wb")
    proxy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("license-proxy")), "serve", "--config", str(config),
        stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    prom = await asyncio.create_subprocess_exec(
        prometheus, f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/readyz") as ready:
                        if ready.status == 200:
                            break
                await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # a few scrapes before the traffic
        started = time.time()
        calls = await players(
            url, time.monotonic() + args.minutes * 60, jwks, sandbox, started, args.minutes
        )
        await asyncio.sleep(3)
        ended = time.time()
        base = f"http://127.0.0.1:{prom_port}"
        span = f"{int(ended - started)}s"
        answers = []
        async with aiohttp.ClientSession() as http:
            for panel in dashboard["panels"]:
                series = []
                for target in panel["targets"]:
                    expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                    expr = expr.replace("$__range", span)
                    for result in await query(
                        http, base, expr, started, ended, bool(target.get("instant"))
                    ):
                        points = result.get("values") or [result["value"]]
                        series.append((legend(target["legendFormat"], result["metric"]), points))
                answers.append(series)
        draw(dashboard["panels"], answers, started, args.output)
        print(f"{calls} calls over {span}; drew {args.output}")
    finally:
        for process in (proxy, prom):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
        log.close()
        await jwks_server.stop()
        await sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Run the sandbox, the proxy and Prometheus; draw the panels."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=4.0, help="how long players call")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
