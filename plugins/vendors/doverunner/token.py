"""The DoveRunner license token (``pallycon-customdata-v2``), as VENDOR_FACTS 10.3 describes it.

The token is base64 of a JSON object (not a JWT): ``drm_type``, ``site_id``,
``user_id``, ``cid``, ``policy`` (base64 of the policy JSON encrypted with
AES-256-CBC, the key being the 32-character site key's own bytes and the IV the
ASCII ``0123456789abcdef``, PKCS#7 padded), ``response_format``, ``key_rotation``,
``timestamp`` (UTC, to the second) and ``hash``: base64 of the SHA-256 of
``access_key + drm_type + site_id + user_id + cid + policy + timestamp``. The
functions here reproduce the vendor tutorial's vector (10.9) bit for bit.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy import json_bytes

#: The fixed IV of the policy encryption.
IV = b"0123456789abcdef"
#: ``drm_type`` values, as the docs spell them (case-sensitive).
DRM_TYPES = {"widevine": "Widevine", "playready": "PlayReady", "fairplay": "FairPlay"}


def compact(doc: Any) -> bytes:
    """Compact UTF-8 JSON, keys in the order given."""
    return json_bytes(doc)


class PolicyCipher:
    """AES-256-CBC with the site key and the fixed IV, the cipher prepared once (at start)."""

    __slots__ = ("_cipher",)

    def __init__(self, site_key: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(site_key), modes.CBC(IV))

    def encrypt(self, plaintext: bytes) -> str:
        """``policy``: base64 of AES-256-CBC(site key, the fixed IV, PKCS#7(plaintext))."""
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, policy: str) -> bytes:
        """The plaintext of an encrypted ``policy`` (``ValueError`` when it is not one)."""
        ciphertext = base64.b64decode(policy, validate=True)
        decryptor = self._cipher.decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


def encrypt_policy(plaintext: bytes, site_key: bytes) -> str:
    """``policy`` encrypted with ``site_key`` in one call (:class:`PolicyCipher`)."""
    return PolicyCipher(site_key).encrypt(plaintext)


def decrypt_policy(policy: str, site_key: bytes) -> bytes:
    """The plaintext of an encrypted ``policy`` (``ValueError`` when it is not one)."""
    return PolicyCipher(site_key).decrypt(policy)


def token_hash(
    access_key: str, drm_type: str, site_id: str, user_id: str, cid: str, policy: str, stamp: str
) -> str:
    """``hash``: base64 of the binary SHA-256 of the fields, concatenated with no separator."""
    text = access_key + drm_type + site_id + user_id + cid + policy + stamp
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def timestamp(epoch: float) -> str:
    """``timestamp``: UTC ``yyyy-MM-ddTHH:mm:ssZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def license_token(
    *,
    access_key: str,
    drm_type: str,
    site_id: str,
    user_id: str,
    cid: str,
    policy: str,
    stamp: str,
    response_format: str | None = None,
    key_rotation: bool | None = None,
    policy_field: str = "policy",
) -> dict[str, Any]:
    """The token JSON in the vendor serializer's order.

    :param policy: the encrypted policy (:func:`encrypt_policy`).
    :param policy_field: ``policy`` (v2 tokens) or ``token`` (v1, the tutorial's vector).
    """
    doc: dict[str, Any] = {
        "drm_type": drm_type,
        "site_id": site_id,
        "user_id": user_id,
        "cid": cid,
        policy_field: policy,
    }
    if response_format is not None:
        doc["response_format"] = response_format
    if key_rotation is not None:
        doc["key_rotation"] = key_rotation
    doc["timestamp"] = stamp
    doc["hash"] = token_hash(access_key, drm_type, site_id, user_id, cid, policy, stamp)
    return doc


def encode_token(doc: dict[str, Any]) -> str:
    """The ``pallycon-customdata-v2`` value: standard base64 of the compact token JSON."""
    return base64.b64encode(compact(doc)).decode("ascii")
