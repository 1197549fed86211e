"""Android's ClearKey CDM before 8.1 over real transports: standard base64 key ids in, the
license written back in the standard base64 that CDM reads (ExoPlayer's ClearKeyUtil
mapping), while EME CDMs keep getting base64url."""

from __future__ import annotations

import base64
import json

import pytest

from plugins.vendors.clearkey import derive_key
from proxy.challenge.samples import clearkey_request
from proxy.encoding import b64url_decode
from proxy.testing import proxy_config

SEED = bytes.fromhex("663a0280bde66da657b5e665f79e30b28b112734242ee10544c61eb26fd7b761")
#: Key ids whose base64 holds "+" and "/" (so the old CDM's request names its encoding).
KIDS = (bytes.fromhex("fbefbe" + "00" * 13), bytes.fromhex("ffffff" + "11" * 13))


def _standard_b64decode(text: str) -> bytes:
    assert "=" not in text and "-" not in text and "_" not in text
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


async def _license(proxy, http, body: bytes, token: str) -> dict:
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.read())


@pytest.mark.parametrize("padded", [False, True])
async def test_an_old_android_request_gets_a_standard_base64_license(
    proxy_factory, http, dev_token, padded
):
    proxy = await proxy_factory(proxy_config())
    body = clearkey_request(*KIDS, standard_base64=True)
    if padded:
        body = body.replace(b'",', b'==",').replace(b'"]', b'=="]')
    answer = await _license(proxy, http, body, dev_token())
    assert set(answer) == {"keys"}
    for entry, kid in zip(answer["keys"], KIDS, strict=True):
        assert set(entry) == {"kty", "kid", "k"}
        assert _standard_b64decode(entry["kid"]) == kid
        assert _standard_b64decode(entry["k"]) == derive_key(SEED, kid)


async def test_an_eme_request_still_gets_base64url(proxy_factory, http, dev_token):
    proxy = await proxy_factory(proxy_config())
    answer = await _license(proxy, http, clearkey_request(*KIDS), dev_token())
    assert answer["type"] == "temporary"
    assert [b64url_decode(entry["kid"]) for entry in answer["keys"]] == list(KIDS)
    assert "+" not in json.dumps(answer) and "/" not in json.dumps(answer)


async def test_an_old_android_release_is_acknowledged_in_its_encoding(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory(proxy_config())
    body = clearkey_request(KIDS[0], session_type=None, standard_base64=True)
    answer = await _license(proxy, http, body, dev_token())
    assert answer == {"kids": ["++++AAAAAAAAAAAAAAAAAA"]}
