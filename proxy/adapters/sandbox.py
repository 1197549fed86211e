"""A vendor's part of the sandbox: fresh keys, its emulator, its backend section, its policy.

``license-proxy serve --sandbox`` and the ``vendor_sandbox`` test fixture
(:mod:`proxy.testing.sandbox`) ask every registered vendor for a
:class:`VendorSandbox` (``VendorSpec.sandbox``), serve its emulator on loopback,
and route a backend named after the vendor to it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.upstream.messages import UpstreamRequest


class VendorSandbox(ABC):
    """One sandbox run of one vendor; make fresh keys in ``__init__`` (never real credentials).

    Example::

        class AcmeSandbox(VendorSandbox):
            def __init__(self) -> None:
                self.key = os.urandom(32)

            def emulator(self) -> web.Application:
                return make_app(self.key)

            def backend(self, url: str | None) -> dict[str, Any]:
                return {"vendor": "acme", "url": f"{url}/license", "key": "hex:" + self.key.hex()}
    """

    def emulator(self) -> web.Application | None:
        """The vendor's emulator (an aiohttp app built with :mod:`proxy.testing.emulator`),
        checking what the adapter sends against the vendor's documented format; None for
        a local vendor, which answers by itself."""
        return None

    @abstractmethod
    def backend(self, url: str | None) -> dict[str, Any]:
        """The ``[backends.NAME]`` section for this run.

        :param url: the running emulator's base URL (``http://127.0.0.1:PORT``);
            None for a local vendor.
        """

    def policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        """The sandbox policy for this vendor's backend, made from the shared one (a
        rental with SD and HD rules): leave out what the vendor has no means to carry."""
        return policy

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """What the vendor reads as the license policy in ``request`` (built by this run's
        backend), decoded with this run's keys: the docs' policy tables are rendered through
        it, so each vendor package says how its own message reads. By default a JSON body."""
        if request.headers.get("Content-Type") == "application/json":
            decoded = json.loads(request.body)
            return decoded if isinstance(decoded, dict) else {}
        return {}
