"""The ``clearkey`` vendor: a local backend that issues W3C ClearKey licenses itself.

Keys come from inline values, a JSON file, or a key seed: for a seed, the key
of any key id is the first 16 bytes of HMAC-SHA256(seed, the 16 key-id bytes).
The answer is a JSON Web Key Set with base64url values and no padding, which
is what browser CDMs accept; Android's ClearKey CDM before 8.1 gets it in the
standard base64 it asked in (:func:`proxy.challenge.clearkey.license_json`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugins.vendors.clearkey.settings import ClearKeySettings
from proxy import (
    DrmSystem,
    ProxyError,
    Reason,
    Rendering,
    RequestType,
    VendorCall,
    VendorLicense,
    b64url_decode,
    parse_key_id,
    prepare,
)
from proxy.challenge.clearkey import license_json, release_json, wants_standard_base64

CONTENT_TYPE = "application/json"
#: Seed-derived keys kept in memory; past this many the cache starts over.
DERIVED_KEYS_KEPT = 4096


def derive_key(seed: bytes, key_id: bytes) -> bytes:
    """The ClearKey content key for ``key_id`` under ``seed`` (DESIGN.md's derivation)."""
    return hmac.digest(seed, key_id, "sha256")[:16]


def _load_keys_file(path: Path) -> dict[bytes, bytes]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"keys_file: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"keys_file: {path} is not JSON") from None
    entries: list[tuple[Any, Any]]
    decode: Callable[[str], bytes]
    if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        entries = [(e.get("kid"), e.get("k")) for e in doc["keys"] if isinstance(e, dict)]
        decode = b64url_decode
    elif isinstance(doc, dict):
        entries = list(doc.items())
        decode = bytes.fromhex
    else:
        raise ValueError(f"keys_file: {path} is neither a key set nor a kid -> key map")
    keys = {}
    for kid, key in entries:
        try:
            key_bytes = decode(key)
            key_id = parse_key_id(kid)
        except (TypeError, ValueError):
            raise ValueError(f"keys_file: {path} has an unreadable entry") from None
        if len(key_bytes) != 16:
            raise ValueError(f"keys_file: {path}: a key is not 16 bytes")
        keys[key_id] = key_bytes
    return keys


#: What a ClearKey license enforces: playback and persistence (by refusing), the allowed
#: track types (by leaving keys out) and the window (no license outside it). W3C
#: ClearKey licenses carry no lifetime and no renewal, so durations and an expiry
#: can't be enforced once the keys are out: start warns about them.
RENDERING = Rendering(
    license=frozenset({"can_play", "persistent"}),
    allowed_track_types=True,
    per_key=True,
    enforced_by="nothing_can",
    hints={
        "default": "a ClearKey license carries no lifetime: the player keeps the keys "
        "for as long as it likes"
    },
)


class ClearKeyAdapter:
    """Issues ClearKey licenses from the configured key store."""

    drm_systems = frozenset({DrmSystem.CLEARKEY})
    renderings = {DrmSystem.CLEARKEY: RENDERING}

    def __init__(self, name: str, settings: ClearKeySettings, services: Any) -> None:
        self.name = name
        self.clock = services.clock
        self.keys: dict[bytes, bytes] = {}
        if settings.keys_file is not None:
            self.keys.update(_load_keys_file(settings.keys_file))
        self.keys.update({parse_key_id(k): v.value for k, v in settings.keys.items()})
        self.seed = settings.key_seed.value if settings.key_seed is not None else None
        self._derived: dict[bytes, bytes] = {}

    def key_for(self, key_id: bytes) -> bytes | None:
        """The content key for ``key_id``: stored, else derived from the seed, else None."""
        key = self.keys.get(key_id)
        if key is None and self.seed is not None:
            key = self._derived.get(key_id)
            if key is None:
                # An HMAC per request costs more than the lookup; the cache is bounded
                # (a client choosing key ids can't grow it without limit).
                key = derive_key(self.seed, key_id)
                if len(self._derived) >= DERIVED_KEYS_KEPT:
                    self._derived.clear()
                self._derived[key_id] = key
        return key

    async def issue(self, call: VendorCall) -> VendorLicense:
        """A JSON Web Key Set for the requested keys (or a release acknowledgement)."""
        challenge = call.challenge
        key_ids = call.key_ids
        standard_base64 = wants_standard_base64(challenge)
        if challenge.request_type is RequestType.RELEASE:
            ack = release_json(key_ids, standard_base64=standard_base64)
            return VendorLicense(ack, CONTENT_TYPE, key_ids)
        prepare(call, RENDERING, "clearkey", self.clock.time())
        session_type = challenge.details.get("session_type", "temporary")
        license_settings = call.policy.license
        if license_settings.can_play is False:
            # No vendor is involved: the operator's own policy says no (not UPSTREAM_REJECTED).
            policy = call.policy.name
            raise ProxyError(
                Reason.NOT_ENTITLED,
                f"the operator's policy {policy!r} does not allow playback (can_play = false)",
                metadata={"policy": policy, "cause": "can_play"},
            )
        if session_type != "temporary" and license_settings.persistent is not True:
            raise _rejected(
                "PERSISTENCE_NOT_ALLOWED", "the policy does not allow persistent licenses"
            )
        allowed = call.policy.allowed_track_types
        keys: list[tuple[bytes, bytes]] = []
        issued = []
        for key_id in key_ids:
            track = call.policy.key_track_types.get(key_id)
            if allowed is not None and track is not None and track not in allowed:
                call.ctx.note(f"key {key_id.hex()} left out: track {track} is not allowed")
                continue
            key = self.key_for(key_id)
            if key is None:
                raise _rejected("KEY_NOT_FOUND", "a requested key is not known to this backend")
            keys.append((key_id, key))
            issued.append(key_id)
        if not keys:
            raise _rejected("NO_KEYS_ALLOWED", "the policy allows none of the requested keys")
        body = license_json(keys, session_type, standard_base64=standard_base64)
        return VendorLicense(body, CONTENT_TYPE, tuple(issued))


def _rejected(code: str, detail: str) -> ProxyError:
    return ProxyError(Reason.UPSTREAM_REJECTED, detail, metadata={"vendor_code": code})
