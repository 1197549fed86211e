"""Every vendor emulator on loopback, with fresh keys and a proxy config that points at them.

``license-proxy serve --sandbox`` runs this; the ``vendor_sandbox`` fixture of
:mod:`proxy.testing` hands it to tests. Each vendor gets one backend, named
after it, and one policy that a token elects with the claim
``vendor = "<name>"`` (``license-proxy token vendor=axinom``); tokens without
the claim keep the embedded default's ClearKey policy.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.emulators import axinom, azure, verimatrix, widevine_cloud
from proxy.testing.emulator import RunningEmulator, start_emulator

VENDORS = ("axinom", "verimatrix", "azure", "widevine_cloud")
AZURE_ISSUER = "https://sts.sandbox.example/"
AZURE_AUDIENCE = "urn:license-proxy:sandbox"
VERIMATRIX_AUDIENCE = "multidrm-license"
WIDEVINE_PROVIDER = "sandbox_provider"


@dataclass
class SandboxKeys:
    """Fresh secrets for one sandbox run (never real vendor credentials)."""

    axinom_com_key_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    axinom_com_key: bytes = field(default_factory=lambda: os.urandom(32))
    verimatrix_key_id: str = field(default_factory=lambda: f"sak-{uuid.uuid4().hex[:8]}")
    verimatrix_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    azure_key: bytes = field(default_factory=lambda: os.urandom(64))
    widevine_key: bytes = field(default_factory=lambda: os.urandom(32))
    widevine_iv: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def verimatrix_pem(self) -> bytes:
        """The Verimatrix private key as unencrypted PKCS#8 PEM."""
        return self.verimatrix_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _b64ref(data: bytes) -> str:
    return "base64:" + base64.b64encode(data).decode()


#: What each vendor's sandbox policy asks for: a rental with SD/HD rules.
SANDBOX_POLICY: dict[str, Any] = {
    "license": {
        "can_play": True,
        "persistent": False,
        "license_duration": "2d",
        "rental_duration": "2d",
        "playback_duration": "4h",
    },
    "tracks": {
        "SD": {"widevine_security_level": 1, "hdcp": "NONE"},
        "HD": {"widevine_security_level": 3, "hdcp": "V1", "playready_min_security_level": 3000},
    },
}


@dataclass
class Sandbox:
    """The four emulators, their keys, and a config that routes to them."""

    keys: SandboxKeys = field(default_factory=SandboxKeys)
    emulators: dict[str, RunningEmulator] = field(default_factory=dict)

    async def start(self, host: str = "127.0.0.1") -> Sandbox:
        """Serve every emulator on ``host`` (ephemeral ports)."""
        keys = self.keys
        apps = {
            "axinom": axinom.make_app(
                keys.axinom_com_key_id, base64.b64encode(keys.axinom_com_key).decode()
            ),
            "verimatrix": verimatrix.make_app(
                keys.verimatrix_key.public_key(), keys.verimatrix_key_id, VERIMATRIX_AUDIENCE
            ),
            "azure": azure.make_app(AZURE_ISSUER, AZURE_AUDIENCE, keys.azure_key),
            "widevine_cloud": widevine_cloud.make_app(
                WIDEVINE_PROVIDER, keys.widevine_key, keys.widevine_iv
            ),
        }
        try:
            for name, app in apps.items():
                self.emulators[name] = await start_emulator(app, host)
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop every emulator."""
        for emulator in self.emulators.values():
            await emulator.stop()
        self.emulators.clear()

    def __getitem__(self, vendor: str) -> RunningEmulator:
        return self.emulators[vendor]

    def backend(self, vendor: str, **overrides: Any) -> dict[str, Any]:
        """The ``[backends.NAME]`` section for ``vendor``'s emulator (``overrides`` merged)."""
        keys = self.keys
        base = self.emulators[vendor].url
        section: dict[str, Any]
        if vendor == "axinom":
            section = {
                "vendor": "axinom",
                "com_key_id": keys.axinom_com_key_id,
                "com_key": _b64ref(keys.axinom_com_key),
                "urls": axinom.urls(base),
            }
        elif vendor == "verimatrix":
            section = {
                "vendor": "verimatrix",
                "urls": verimatrix.urls(base),
                "signing_key": _b64ref(keys.verimatrix_pem),
                "key_id": keys.verimatrix_key_id,
                "audience": VERIMATRIX_AUDIENCE,
                # The sandbox policy has PlayReady rules (field names UNVERIFIED).
                "security_policy_drms": ["widevine", "playready", "fairplay"],
            }
        elif vendor == "azure":
            section = {
                "vendor": "azure",
                "urls": azure.url_templates(base),
                "service_certificate_url": f"{base}/Widevine/",
                "renewal_url": f"{base}/Widevine/",
                "issuer": AZURE_ISSUER,
                "audience": AZURE_AUDIENCE,
                "signing_key": _b64ref(keys.azure_key),
                # Widevine carries the policy in the template; for PlayReady and FairPlay
                # the content key policy at Azure/MK.IO would (the emulator stands in).
                "widevine_request": "template",
                "policy_enforced_by_vendor": ["playready", "fairplay"],
            }
        elif vendor == "widevine_cloud":
            section = {
                "vendor": "widevine_cloud",
                "url": widevine_cloud.url(base),
                "provider": WIDEVINE_PROVIDER,
                "signing_key": "hex:" + keys.widevine_key.hex(),
                "signing_iv": "hex:" + keys.widevine_iv.hex(),
            }
        else:
            raise KeyError(vendor)
        section.update(overrides)
        return section

    def config(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` plus one backend per vendor and one policy electing each by claim."""
        config = copy.deepcopy(base)
        backends = config.setdefault("backends", {})
        policies = config.setdefault("policies", [])
        for vendor in VENDORS:
            backends[vendor] = self.backend(vendor)
            policies.append(
                {
                    "name": f"sandbox-{vendor.replace('_', '-')}",
                    "priority": 10,
                    "match": {"claims": {"vendor": vendor}},
                    "backends": [vendor],
                    **copy.deepcopy(SANDBOX_POLICY),
                }
            )
        return config

    def describe(self) -> str:
        """What a developer needs to know, for the console."""
        lines = ["vendor emulators on loopback:"]
        for vendor, emulator in self.emulators.items():
            lines.append(f"  {vendor:<15} {emulator.url}")
        lines.append("elect one with a token claim, e.g.: license-proxy token vendor=axinom")
        return "\n".join(lines)


async def _serve(
    raw: dict[str, Any],
    base_dir: Any,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> int:
    from proxy.builder import build_pipeline, load_config
    from proxy.errors import ConfigError
    from proxy.overrides import with_server_overrides
    from proxy.pipeline import Pipeline
    from proxy.server import ProxyApp

    sandbox = await Sandbox().start()
    try:
        try:
            pipeline = build_pipeline(sandbox.config(raw), base_dir=base_dir)
        except ConfigError as exc:
            print(f"sandbox config: {len(exc.errors)} error(s)", file=sys.stderr)
            for path, message in exc.errors:
                print(f"  {path}: {message}", file=sys.stderr)
            return 2
        server = pipeline.server
        if not (server.grpc.is_loopback and server.http.is_loopback):
            print("--sandbox serves on loopback listeners only", file=sys.stderr)
            return 2
        print(sandbox.describe(), file=sys.stderr, flush=True)

        def rebuild() -> Pipeline:
            # SIGHUP: the file read again, routed to the same running emulators.
            fresh, fresh_base = load_config(config) if config is not None else (raw, base_dir)
            fresh = with_server_overrides(fresh, overrides or {})
            return build_pipeline(sandbox.config(fresh), base_dir=fresh_base)

        await ProxyApp(pipeline, rebuild=rebuild).serve_forever()
    finally:
        await sandbox.stop()
    return 0


def serve_sandbox(config: str | None, overrides: dict[str, Any] | None = None) -> int:
    """``license-proxy serve --sandbox``: the emulators, then the proxy routed to them, until
    SIGTERM (``overrides``: the ``[server]`` settings the command line gives)."""
    from proxy.builder import load_config
    from proxy.errors import ConfigError
    from proxy.logs import setup_logging
    from proxy.overrides import with_server_overrides

    try:
        raw, base_dir = load_config(config)
        raw = with_server_overrides(raw, overrides or {})
    except ConfigError as exc:
        for path, message in exc.errors:
            print(f"{path}: {message}", file=sys.stderr)
        return 2
    log = raw.get("log", {}) if isinstance(raw.get("log"), dict) else {}
    setup_logging(str(log.get("level", "INFO")), str(log.get("format", "text")))
    try:
        return asyncio.run(_serve(raw, base_dir, config, overrides))
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
