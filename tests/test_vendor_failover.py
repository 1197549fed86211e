"""Failover between any two registered vendors: for every ordered pair of vendors reached over
HTTP that serve Widevine, an outage of the first is answered by the second, through one proxy.

Read from the registry, so a vendor package installed beside the project joins every pair.
"""

from __future__ import annotations

import itertools

import grpc

from proxy.model import DrmSystem
from proxy.testing import proxy_config
from proxy.testing.emulator import license_facts
from tests import vendor_matrix
from tests.test_vendor_integration import grpc_license, widevine_challenge

VENDORS = vendor_matrix.emulated(DrmSystem.WIDEVINE)
PAIRS = list(itertools.permutations(VENDORS, 2))


async def test_an_outage_of_any_vendor_fails_over_to_any_other(
    vendor_sandbox, proxy_factory, dev_token
):
    config = vendor_sandbox.config(proxy_config())
    for vendor in VENDORS:
        # Each vendor fails here again and again on purpose: no circuit may open.
        config["backends"][vendor]["circuit_breaker"] = {"enabled": False}
    for first, second in PAIRS:
        config["policies"].append(
            {
                "name": f"failover-{first}-{second}".replace("_", "-"),
                "priority": 30,
                "match": {"claims": {"pair": f"{first}>{second}"}},
                "backends": [first, second],
                "license": {"can_play": True},
            }
        )
    proxy = await proxy_factory(config)
    served = {}
    for first, second in PAIRS:
        vendor_sandbox[first].fault.set("error", status=503, times=1)
        token = dev_token({"sub": "alice", "pair": f"{first}>{second}"})
        reply, info, code = await grpc_license(proxy, token, "widevine", widevine_challenge())
        assert code is grpc.StatusCode.OK, (first, second, info)
        served[(first, second)] = (
            reply.backend,
            license_facts("widevine", reply.license)["vendor"],
        )
    assert served == {pair: (pair[1], pair[1]) for pair in PAIRS}
    assert {"drmtoday", "doverunner"} <= set(VENDORS)
