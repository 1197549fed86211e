"""A small translating vendor for the observability tests: ``acme``, which names each exchange
in its ``X-Acme-Trace`` response header, and its emulator (logs what it received)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy import (
    DrmSystem,
    ProxyError,
    Reason,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamSettings,
    VendorCall,
    VendorLicense,
    VendorSpec,
    hookimpl,
)
from proxy.testing.emulator import FaultSwitch, new_app, record

ACME_TRACE = "X-Acme-Trace"
ANSWERED = web.AppKey("answered", list)


class AcmeSettings(UpstreamSettings):
    """``[backends.NAME]`` of an acme backend."""

    url: str


class AcmeAdapter:
    """Posts the ClearKey challenge as it is; a 200 answer is the license."""

    def __init__(self, settings: AcmeSettings) -> None:
        self.settings = settings

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        return UpstreamRequest(url=self.settings.url, body=call.challenge.payload)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        if response.status == 403:
            raise ProxyError(
                Reason.UPSTREAM_REJECTED, "acme refused", metadata={"vendor_code": "ACME-7"}
            )
        if response.status != 200:
            raise ProxyError(Reason.UPSTREAM_UNAVAILABLE, f"acme answered {response.status}")
        return VendorLicense(license=response.body, content_type="application/json")


class AcmeVendor:
    """Registers the ``acme`` vendor, which declares its correlation header."""

    @hookimpl
    def proxy_register_vendors(self, register: Any) -> None:
        register(
            VendorSpec(
                name="acme",
                settings=AcmeSettings,
                adapter=lambda name, settings, services: AcmeAdapter(settings),
                drm_systems=frozenset({DrmSystem.CLEARKEY}),
                correlation_headers=(ACME_TRACE,),
            )
        )


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    return web.Response(status=403, text="refused", headers={ACME_TRACE: "acme-refusal-1"})


def acme_app() -> web.Application:
    """The acme emulator: answers a fake ClearKey license, names the exchange, logs requests."""
    app = new_app(_reject)

    async def license_handler(request: web.Request) -> web.StreamResponse:
        await record(request)
        answered = request.app[ANSWERED]
        answered.append(len(answered) + 1)
        body = json.dumps({"keys": [], "type": "temporary", "from": "acme"}).encode()
        return web.Response(body=body, headers={ACME_TRACE: f"acme-{answered[-1]}"})

    app[ANSWERED] = []
    app.router.add_post("/license", license_handler)
    return app


def acme_config(base: dict[str, Any], url: str) -> dict[str, Any]:
    """``base`` plus backend ``acme`` and a policy electing it by the claim ``vendor = "acme"``."""
    base.setdefault("backends", {})["acme"] = {"vendor": "acme", "url": f"{url}/license"}
    base.setdefault("policies", []).append(
        {
            "name": "acme-policy",
            "priority": 10,
            "match": {"claims": {"vendor": "acme"}},
            "backends": ["acme"],
        }
    )
    return base
