"""Usage metering: licenses per backend, vendor, DRM, policy and request type; vendor latency;
key-set refresh gauges; and a dashboard that queries only what the proxy exports."""

from __future__ import annotations

import importlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.token import jwks
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import serving
from tests.conftest import clearkey_request
from tests.observability_support import AcmeVendor, acme_app, acme_config
from tests.token_support import ISSUER, KeyServer, eventually, issuer, public_jwk, rsa_key

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "license-proxy.json"
METRIC_MODULES = (
    "proxy.metrics",
    "proxy.upstream.client",
    "proxy.upstream.circuit",
    "proxy.state.store",
    "plugins.token.metrics",
    "plugins.access.metrics",
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def issued(**labels: str) -> float:
    return sample("license_proxy_licenses_issued_total", **labels)


CLEARKEY_NEW = {
    "backend": "clearkey",
    "vendor": "clearkey",
    "drm": "clearkey",
    "policy": "default",
    "request_type": "new",
}
ACME_NEW = {**CLEARKEY_NEW, "backend": "acme", "vendor": "acme", "policy": "acme-policy"}


async def post(proxy: Any, http: Any, token: str) -> int:
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        await response.read()
        return response.status


async def test_license_counters_match_the_requests_sent(proxy_factory, http, dev_token):
    async with serving(acme_app()) as acme:
        trusted = proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}})  # dry runs
        proxy = await proxy_factory(acme_config(trusted, acme.url), plugins=[AcmeVendor()])
        before = issued(**CLEARKEY_NEW), issued(**ACME_NEW)
        seconds_before = sample("license_proxy_upstream_seconds_count", backend="acme")
        token, acme_token = dev_token(), dev_token({"vendor": "acme"})
        statuses = [await post(proxy, http, token) for _ in range(3)]
        statuses += [await post(proxy, http, acme_token) for _ in range(2)]
        statuses.append(await post(proxy, http, token + "x"))  # refused: counts nowhere
        stub = proxy.stub()
        for dry_run in (False, True):  # a dry run issues nothing
            await stub.AcquireLicense(
                pb.AcquireLicenseRequest(
                    drm_system=pb.DRM_SYSTEM_CLEARKEY,
                    challenge=clearkey_request(KID),
                    token=token,
                    dry_run=dry_run,
                )
            )
        acme.fault.set("reject", times=1)
        assert await post(proxy, http, acme_token) == 403  # refused by the vendor: not issued
        assert statuses == [200] * 5 + [401]
        assert issued(**CLEARKEY_NEW) - before[0] == 4
        assert issued(**ACME_NEW) - before[1] == 2
        assert sample("license_proxy_upstream_seconds_count", backend="acme") - seconds_before == 3
        async with http.get(f"{proxy.admin_url}/metrics") as response:
            text = await response.text()
    line = (
        'license_proxy_licenses_issued_total{backend="acme",drm="clearkey",policy="acme-policy",'
        'request_type="new",vendor="acme"}'
    )
    assert line in text


@pytest.fixture
def fast_schedule(monkeypatch):
    monkeypatch.setattr(jwks, "POLL_SECONDS", 0.01)


async def test_key_set_refresh_gauges_follow_fetches(proxy_factory, fast_schedule):
    server = await KeyServer(keys=[public_jwk(rsa_key("k1"), "k1")]).start()
    server.cache_control = "public, max-age=600"
    clock = FakeClock()
    try:
        config = proxy_config(
            {"auth": {"issuers": [issuer(jwks_uri=server.jwks_uri, refresh={"timeout": "2s"})]}}
        )
        await proxy_factory(config, clock=clock)

        def failures() -> float:
            return sample("license_proxy_token_key_fetch_failures", issuer=ISSUER)

        def next_refresh() -> float:
            return sample("license_proxy_token_key_next_refresh_timestamp_seconds", issuer=ISSUER)

        await eventually(lambda: next_refresh() == clock.time() + 600, "the first fetch")
        assert failures() == 0
        server.fail_with = 500
        clock.advance(601)
        await eventually(lambda: failures() == 1, "a failed refresh counted")
        assert clock.time() < next_refresh() <= clock.time() + 600  # a retry is scheduled
        server.fail_with = None
        clock.advance(601)
        await eventually(lambda: failures() == 0, "the next success resets the count")
    finally:
        await server.stop()


# -- the dashboard ------------------------------------------------------------------------

_PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "by", "without", "histogram_quantile", "max", "min",
    "avg", "count", "topk", "bottomk", "time", "le", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "clamp_min", "clamp_max", "abs", "offset", "bool",
    "label_replace", "vector", "scalar", "deriv", "delta", "changes", "resets", "sort",
    "sort_desc", "max_over_time", "min_over_time", "avg_over_time",
}  # fmt: skip


def exported_names() -> set[str]:
    """Every sample name the proxy's metrics can produce (series with no value yet included)."""
    for module in METRIC_MODULES:  # each defines its metrics when imported
        importlib.import_module(module)
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    names = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers that are not functions,
    keywords, label names or label values)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {n for n in names if n not in _PROMQL_WORDS and not re.fullmatch(r"[0-9e]+", n)}


def test_every_dashboard_panel_queries_metrics_the_proxy_exports():
    exported = exported_names()
    queries = dashboard_queries()
    assert len(queries) >= 8
    for title, expr in queries:
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= exported, (title, names - exported)


def test_the_dashboard_has_every_metering_panel():
    names = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    for wanted in (
        "license_proxy_licenses_issued_total",
        "license_proxy_upstream_seconds_bucket",
        "license_proxy_circuit_state",
        "license_proxy_token_key_fetch_failures",
        "license_proxy_requests_total",
    ):
        assert wanted in names


def test_the_label_reader_finds_names_and_skips_labels():
    expr = 'sum by (backend) (rate(license_proxy_upstream_seconds_bucket{backend=~"a.*"}[5m]))'
    assert metric_names(expr) == {"license_proxy_upstream_seconds_bucket"}


async def test_grpc_denials_are_counted_without_a_license(proxy_factory):
    proxy = await proxy_factory()
    before = sample(
        "license_proxy_requests_total",
        transport="grpc",
        drm="clearkey",
        outcome="denied",
        reason="TOKEN_MISSING",
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID)
            )
        )
    after = sample(
        "license_proxy_requests_total",
        transport="grpc",
        drm="clearkey",
        outcome="denied",
        reason="TOKEN_MISSING",
    )
    assert after - before == 1


def test_every_metric_is_documented_with_its_labels():
    for module in METRIC_MODULES:
        importlib.import_module(module)
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `(license_proxy_\w+)` \| (\w+) \|([^|]*)\|", line)
        if match:
            rows[match[1]] = (match[2], set(re.findall(r"`(\w+)`", match[3])))
    exported = [f for f in REGISTRY.collect() if f.name.startswith("license_proxy_")]
    assert exported
    for family in exported:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name in rows, f"{name} is not in docs/operations.md"
        kind, labels = rows[name]
        assert kind == family.type, name
        metric = REGISTRY._names_to_collectors[name]
        assert labels == set(metric._labelnames), name
