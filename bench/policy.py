"""What policy election costs per request: ``python -m bench.policy``.

Calls the built-in policy plugin's ``proxy_select_policy`` directly (no
network, no token verification) for a growing number of configured policies,
with and without a decision trace, with trusted Verimatrix-style claims to
apply, and with a large content catalog. Prints microseconds per call.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from plugins.policy import PolicyPlugin
from proxy.builder import build_pipeline
from proxy.model import (
    ChallengeInfo,
    DrmSystem,
    LicenseRequest,
    Principal,
    RequestContext,
    RequestType,
)
from proxy.services import Services
from proxy.testing import proxy_config

KEYS = [uuid.UUID(int=i + 1).bytes for i in range(4)]


def policies(count: int) -> list[dict[str, Any]]:
    """``count`` policies: each matches one tier value and a content pattern; the last one
    (lowest priority) matches everything."""
    made = [
        {
            "name": f"p{i}",
            "backend": "clearkey",
            "priority": i % 7,
            "match": {"claims": {"tier": f"tier-{i}"}, "content_ids": [f"catalog-{i % 10}/*"]},
            "license": {"license_duration": "1h"},
            "tracks": {"HD": {"widevine_security_level": 3}, "DEFAULT": {"hdcp": "HDCP_V1"}},
        }
        for i in range(count - 1)
    ]
    made.append({"name": "fallback", "backend": "clearkey", "priority": -1})
    return made


def catalog(keys: int) -> dict[str, Any]:
    """A catalog of ``keys`` keys, four per content."""
    contents: dict[str, dict[str, str]] = {}
    for i in range(keys):
        contents.setdefault(f"m{i // 4}", {})[str(uuid.UUID(int=i + 1))] = (
            "SD",
            "HD",
            "UHD1",
            "AUDIO",
        )[i % 4]
    return {"contents": contents}


def plugin_for(config: dict[str, Any]) -> PolicyPlugin:
    """A policy plugin configured by the builder from ``config`` (the built-in one blocked,
    this instance registered in its place)."""
    plugin = PolicyPlugin()
    config.setdefault("plugins", {})["blocked"] = ["policy"]
    build_pipeline(config, plugins=[("policy_bench", plugin)])
    return plugin


def context(traced: bool, content_id: str) -> RequestContext:
    """A request context as the pipeline has it when the election runs."""
    ctx = RequestContext(
        request=LicenseRequest(challenge=b"x", request_id="bench"),
        services=Services(),
        request_id="bench",
        challenge=ChallengeInfo(
            DrmSystem.WIDEVINE, RequestType.NEW, b"", key_ids=tuple(KEYS), content_id=content_id
        ),
        trace=[] if traced else None,
    )
    return ctx


def timed(call: Callable[[], Any], rounds: int = 7, number: int = 2000) -> float:
    """Microseconds per call: the best of ``rounds`` runs of ``number`` calls (as timeit
    reports it: the least disturbed run)."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return min(samples)


VMX = {
    "security_policy": {
        "a": {
            "widevine": {"security_level": 5, "required_output_protection": {"hdcp": "HDCP_V2_2"}}
        },
        "b": {"widevine": {"required_output_protection": {"hdcp": "HDCP_V1"}}},
    },
    "track_type_policy": {"HD": "a", "UHD1": "a"},
    "default_security_policy": "b",
    "track_policy": {str(uuid.UUID(bytes=KEYS[3])): "a"},
    "policy": {"widevine": {"license_duration": 600}},
}


def select(plugin: PolicyPlugin, ctx: RequestContext, principal: Principal) -> Callable[[], Any]:
    """One election, as the pipeline calls it (a traced context gets a fresh step each time)."""

    def call() -> Any:
        if ctx.trace is not None:
            ctx.trace[:] = [SimpleNamespace(reasons=[])]
        return plugin.proxy_select_policy(ctx, principal)

    return call


def report(label: str, micros: float) -> None:
    """One line of figures."""
    print(f"  {label:44s} {micros:8.1f} us")


def main(argv: list[str] | None = None) -> None:
    """Print the figures (``argv``: this suite's options, as ``python -m bench`` passes them)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=2000, help="calls per round")
    number = parser.parse_args(argv).number
    print("policy election, microseconds per proxy_select_policy call (best of 7 rounds)")
    for count in (1, 10, 100, 1000):
        plugin = plugin_for(proxy_config({"policies": policies(count)}))
        principal = Principal("alice", "sts", {"tier": "tier-none"})
        for traced in (False, True):
            call = select(plugin, context(traced, "catalog-3/movie"), principal)
            label = "traced" if traced else "untraced"
            report(f"{count:4d} policies, {label}", timed(call, number=number))
    plugin = plugin_for(proxy_config({"policies": policies(10)}))
    for name, claims in (("no policy claims", {}), ("Verimatrix claims, trusted", VMX)):
        principal = Principal(
            "alice", "sts", {"tier": "tier-3", **claims}, trusts_policy_claims=True
        )
        call = select(plugin, context(False, "catalog-3/x"), principal)
        report(f"  10 policies, {name}", timed(call, number=number))
    for keys in (1_000, 100_000):
        plugin = plugin_for(proxy_config({"policies": policies(10), "catalog": catalog(keys)}))
        call = select(
            plugin, context(False, "catalog-3/x"), Principal("alice", "sts", {"tier": "tier-3"})
        )
        report(f"  10 policies, catalog of {keys} keys", timed(call, number=number))


if __name__ == "__main__":
    main()
