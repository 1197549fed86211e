"""The kit's JWS signer (``proxy.JwsSigner``): tokens PyJWT verifies for every algorithm it
signs with, the header and claims PyJWT writes, a key prepared once; and every vendor
adapter minting its per-request credential without ``jwt.encode`` or key parsing."""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

import jwt
import jwt.algorithms
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import JwsSigner, guid, json_bytes, prepare
from proxy.adapters.jws import ALGORITHMS
from proxy.model import ChallengeInfo, DrmSystem, RequestType
from proxy.policy import EffectivePolicy, Policy
from proxy.services import Services
from proxy.testing import vendor_call
from proxy.testing.sandbox import Sandbox
from proxy.vendors import Backend
from tests import vendor_matrix

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
SECRET = os.urandom(64)
CLAIMS: dict[str, Any] = {
    "iss": "license-proxy",
    "aud": "vendor",
    "iat": 1_700_000_000,
    "exp": 1_700_000_060,
    "message": {"type": "entitlement_message", "keys": [{"id": "k1"}], "persist": False},
}


def signing_key(algorithm: str) -> Any:
    """A private key (or HMAC secret) for ``algorithm``."""
    if algorithm.startswith("HS"):
        return SECRET
    if algorithm.startswith(("RS", "PS")):
        return RSA_KEY
    if algorithm == "EdDSA":
        return ED_KEY
    return EC_KEYS[algorithm]


def verification_key(algorithm: str) -> Any:
    key = signing_key(algorithm)
    return key if isinstance(key, bytes) else key.public_key()


def pem(key: Any) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


# -- what it signs -------------------------------------------------------------------


def verified_claims(token: str, algorithm: str) -> dict:
    """The claims of ``token`` as PyJWT reads them after checking its signature."""
    return jwt.decode(
        token,
        verification_key(algorithm),
        algorithms=[algorithm],
        audience="vendor",
        options={"verify_exp": False},
    )


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_pyjwt_verifies_every_algorithm_and_reads_the_claims_back(algorithm):
    signer = JwsSigner(algorithm, signing_key(algorithm), headers={"kid": "k1"})
    token = signer.sign(CLAIMS)
    assert jwt.get_unverified_header(token) == {"alg": algorithm, "kid": "k1", "typ": "JWT"}
    assert verified_claims(token, algorithm) == CLAIMS


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512", "RS256", "EdDSA"])
def test_deterministic_signatures_are_jwt_encodes_token_bit_for_bit(algorithm):
    """Same header bytes, same claim bytes, same signature: the token ``jwt.encode`` made."""
    key = signing_key(algorithm)
    for headers in (None, {"kid": "k1"}, {"kid": "k1", "typ": "JWT"}):
        signer = JwsSigner(algorithm, key, headers=headers)
        assert signer.sign(CLAIMS) == jwt.encode(CLAIMS, key, algorithm=algorithm, headers=headers)


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "PS256", "ES256", "EdDSA"])
def test_a_wrong_key_fails_verification(algorithm):
    token = JwsSigner(algorithm, signing_key(algorithm)).sign(CLAIMS)
    wrong: Any = {
        "HS256": os.urandom(64),
        "RS256": OTHER_RSA_KEY.public_key(),
        "PS256": OTHER_RSA_KEY.public_key(),
        "ES256": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "EdDSA": ed25519.Ed25519PrivateKey.generate().public_key(),
    }[algorithm]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, wrong, algorithms=[algorithm], options={"verify_aud": False})


def test_a_changed_payload_fails_verification():
    header, _, signature = JwsSigner("HS256", SECRET).sign(CLAIMS).split(".")
    forged = JwsSigner("HS256", os.urandom(64)).sign({**CLAIMS, "aud": "other"}).split(".")[1]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}", SECRET, algorithms=["HS256"])


def test_non_ascii_and_wide_values_decode_to_the_same_claims():
    """orjson writes UTF-8 where PyJWT writes \\u escapes: the same JSON value. What orjson
    refuses (integers beyond 64 bits, lone surrogates) goes through json, as PyJWT does."""
    claims = {"sub": "Zoë 🎬", "big": 2**70, "odd": "\ud800", "nested": [{"ü": -(2**63)}]}
    token = JwsSigner("HS256", SECRET).sign(claims)
    assert jwt.decode(token, SECRET, algorithms=["HS256"]) == claims
    token = JwsSigner("HS256", SECRET).sign({"sub": "Zoë"})
    assert jwt.decode(token, SECRET, algorithms=["HS256"]) == {"sub": "Zoë"}


def test_a_datetime_claim_is_refused_not_written_as_text():
    """PyJWT's json refuses a datetime outside exp/iat/nbf; orjson would write it as text
    (an ``exp`` no vendor reads as a time): the signer refuses it as json does."""
    with pytest.raises(TypeError):
        JwsSigner("HS256", SECRET).sign({"exp": datetime.now(UTC)})


def test_a_non_string_issuer_is_refused_as_pyjwt_refuses_it():
    with pytest.raises(TypeError, match="iss"):
        JwsSigner("HS256", SECRET).sign({"iss": 7})


def test_a_serialized_payload_is_signed_as_it_is():
    payload = b'{"b":1,  "a":2}'
    token = JwsSigner("HS256", SECRET).sign_payload(payload)
    assert jwt.api_jws.decode(token, SECRET, algorithms=["HS256"]) == payload


# -- the key, prepared once ------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_a_pem_key_is_parsed_once_into_a_key_object(algorithm, monkeypatch):
    signer = JwsSigner(algorithm, pem(signing_key(algorithm)))
    assert not isinstance(signer.key, bytes | str)
    assert pem(signer.key) == pem(signing_key(algorithm))

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a key was parsed per request")

    with monkeypatch.context() as patched:
        patched.setattr(jwt.algorithms, "load_pem_private_key", no_parsing)
        patched.setattr(jwt.algorithms, "load_pem_public_key", no_parsing)
        with pytest.raises(AssertionError):  # what jwt.encode does with PEM, every call
            jwt.encode(CLAIMS, pem(signing_key(algorithm)), algorithm=algorithm)
        token = signer.sign(CLAIMS)
    assert verified_claims(token, algorithm) == CLAIMS


def test_an_hmac_key_is_checked_once_and_kept_as_bytes(monkeypatch):
    signer = JwsSigner("HS256", SECRET)
    assert signer.key == SECRET

    def no_preparing(self: Any, key: Any) -> Any:
        raise AssertionError("the key was prepared per request")

    with monkeypatch.context() as patched:
        patched.setattr(jwt.algorithms.HMACAlgorithm, "prepare_key", no_preparing)
        with pytest.raises(AssertionError):  # what jwt.encode does, every call
            jwt.encode({"a": 1}, SECRET, algorithm="HS256")
        token = signer.sign({"a": 1})
    assert jwt.decode(token, SECRET, algorithms=["HS256"]) == {"a": 1}


def test_the_header_segment_is_serialized_once():
    signer = JwsSigner("ES256", EC_KEYS["ES256"], headers={"kid": "k1"})
    first, second = signer.sign({"n": 1}), signer.sign({"n": 2})
    assert first.split(".")[0] == second.split(".")[0]
    assert first.split(".")[1] != second.split(".")[1]


@pytest.mark.parametrize(
    ("algorithm", "key", "problem"),
    [
        ("none", SECRET, "not a JWS algorithm"),
        ("HS256", pem(RSA_KEY), "does not suit HS256"),
        ("HS256", b"", "does not suit HS256"),
        ("RS256", EC_KEYS["ES256"], "does not suit RS256"),
        ("RS256", RSA_KEY.public_key(), "private key"),
        ("ES256", EC_KEYS["ES384"], "does not suit ES256"),
        ("ES256", b"not a key", "does not suit ES256"),
        ("EdDSA", RSA_KEY, "does not suit EdDSA"),
    ],
)
def test_a_key_that_does_not_fit_is_refused_at_construction(algorithm, key, problem):
    with pytest.raises(ValueError, match=problem):
        JwsSigner(algorithm, key)


def test_header_mistakes_are_refused_at_construction():
    with pytest.raises(ValueError, match="kid"):
        JwsSigner("HS256", SECRET, headers={"kid": 7})
    with pytest.raises(ValueError, match="alg"):
        JwsSigner("HS256", SECRET, headers={"alg": "HS512"})


def test_a_short_hmac_key_warns_once_at_construction():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signer = JwsSigner("HS256", os.urandom(16))
        signer.sign({"a": 1})
        signer.sign({"a": 2})
    assert len(caught) == 1 and "HMAC key is 16 bytes" in str(caught[0].message)


def test_the_key_never_shows_in_its_repr():
    assert SECRET.hex() not in repr(JwsSigner("HS256", SECRET))
    assert repr(SECRET) not in repr(JwsSigner("HS256", SECRET))


# -- the kit's encoders ----------------------------------------------------------------

json_docs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(), json_docs, max_size=5))
def test_json_bytes_are_the_bytes_json_writes(doc):
    assert json_bytes(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def test_json_bytes_falls_back_to_json_for_what_orjson_refuses():
    doc = {"big": 2**70, "nested": {"n": -(2**64)}}
    assert json_bytes(doc) == b'{"big":1180591620717411303424,"nested":{"n":-18446744073709551616}}'
    assert json_bytes({1: "a"}) == b'{"1":"a"}'
    with pytest.raises(TypeError):
        json_bytes({"when": datetime.now(UTC)})


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=16))
def test_guid_is_the_uuid_string(key_id):
    assert guid(key_id) == str(uuid.UUID(bytes=key_id))


def test_guid_refuses_what_is_not_16_bytes():
    for wrong in (b"", b"\x00" * 15, b"\x00" * 17):
        with pytest.raises(ValueError):
            guid(wrong)


# -- every adapter ---------------------------------------------------------------------


@pytest.mark.parametrize("vendor", sorted(vendor_matrix.emulated()))
def test_no_adapter_encodes_with_pyjwt_or_prepares_a_key_per_request(vendor, monkeypatch):
    """Built once, each adapter mints its credential with no ``jwt.encode`` and no key
    parsing or preparation; the request still verifies at the vendor's emulator (its own
    tests)."""
    sandbox = Sandbox()
    spec = sandbox.registry.specs[vendor]
    settings_ = spec.settings.model_validate(sandbox.vendors[vendor].backend("http://127.0.0.1:9"))
    services = Services()
    adapter: Any = spec.adapter(vendor, settings_, services)
    policy = EffectivePolicy.from_policy(
        Policy.model_validate(sandbox.policy(vendor)), drm_system=DrmSystem.WIDEVINE
    )
    keys = (uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes)
    challenge = ChallengeInfo(DrmSystem.WIDEVINE, RequestType.NEW, b"\x08\x01" * 200, keys)
    call = vendor_call(challenge, policy, services=services, content_id="movie-1")
    rendering = Backend(vendor, spec, settings_, adapter).rendering(DrmSystem.WIDEVINE)
    call.license = prepare(call, rendering, vendor, services.clock.time())

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("per-request key work or jwt.encode")

    monkeypatch.setattr(jwt.api_jws.PyJWS, "encode", refused)
    for name in ("load_pem_private_key", "load_pem_public_key", "load_der_private_key"):
        if hasattr(jwt.algorithms, name):
            monkeypatch.setattr(jwt.algorithms, name, refused)
    for algorithm in ("HMACAlgorithm", "RSAAlgorithm", "ECAlgorithm", "OKPAlgorithm"):
        monkeypatch.setattr(getattr(jwt.algorithms, algorithm), "prepare_key", refused)
    for module in [m for n, m in sys.modules.items() if n.startswith("plugins.vendors.")]:
        if hasattr(module, "load_pem_private_key"):
            monkeypatch.setattr(module, "load_pem_private_key", refused)
    request = adapter.build_request(call)
    assert request.url and request.headers
