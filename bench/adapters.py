"""What minting a vendor's credential costs per request: ``python -m bench.adapters``.

For every registered vendor reached over HTTP, builds its adapter from its sandbox
section (fresh keys, nothing sent) and calls ``build_request`` for a Widevine license
under its sandbox policy (the shared rental with SD/HD rules, less what the vendor
can't carry): the policy rendered, the vendor's token minted and signed or encrypted.
Prints process CPU microseconds per call, best of a few rounds, twice: as the adapter's
unit tests call it (``build_request`` runs the shared ``prepare`` check itself), and
as the dispatcher calls it, ``call.license`` already prepared (the adapter's own work
on the real path).
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from proxy import prepare
from proxy.model import ChallengeInfo, DrmSystem, RequestType
from proxy.policy import EffectivePolicy, Policy
from proxy.services import Services
from proxy.testing import vendor_call
from proxy.testing.sandbox import Sandbox
from proxy.vendors import Backend

KEYS = (uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes)


def cost(
    vendor: str, sandbox: Sandbox, requests: int, rounds: int, *, prepared: bool = False
) -> float:
    """Best-of-``rounds`` CPU microseconds per ``build_request`` of ``vendor``'s adapter;
    ``prepared``: with ``call.license`` set as the dispatcher sets it."""
    spec = sandbox.registry.specs[vendor]
    section = sandbox.vendors[vendor].backend("http://127.0.0.1:9")
    services = Services()
    settings = spec.settings.model_validate(section)
    adapter: Any = spec.adapter(vendor, settings, services)
    policy = Policy.model_validate(sandbox.policy(vendor))
    effective = EffectivePolicy.from_policy(policy, drm_system=DrmSystem.WIDEVINE)
    challenge = ChallengeInfo(DrmSystem.WIDEVINE, RequestType.NEW, b"\x08\x01" * 200, KEYS)
    call = vendor_call(challenge, effective, services=services, content_id="movie-1")
    if prepared:
        rendering = Backend(vendor, spec, settings, adapter).rendering(DrmSystem.WIDEVINE)
        call.license = prepare(call, rendering, vendor, services.clock.time())
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(requests):
            adapter.build_request(call)
        best = min(best, (time.process_time() - start) / requests * 1e6)
    return best


def main(argv: list[str]) -> None:
    """Print a Markdown table of CPU per ``build_request``, one row per vendor."""
    parser = argparse.ArgumentParser(prog="python -m bench.adapters")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sandbox = Sandbox()
    print("| vendor | CPU us per build_request | of which the adapter's (call prepared) |")
    print("| --- | ---: | ---: |")
    for vendor in sorted(sandbox.vendors):
        if sandbox.vendors[vendor].emulator() is None:
            continue  # a local vendor builds no request
        whole = cost(vendor, sandbox, args.requests, args.rounds)
        own = cost(vendor, sandbox, args.requests, args.rounds, prepared=True)
        print(f"| {vendor} | {whole:.1f} | {own:.1f} |")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
