"""Tested the way any plugin author tests: proxy.testing's fixtures, a real proxy on loopback."""

from __future__ import annotations

import json

import aiohttp
from acme_embargo.plugin import Embargo

from proxy.testing import proxy_config

CHALLENGE = json.dumps({"kids": ["QGCoZYh4Qmecv5GuW64ecg"], "type": "temporary"}).encode()
CONFIG = {
    "acme_embargo": {
        "titles": [
            {
                "content_ids": ["premiere-*"],
                "release": "2027-03-01T00:00:00Z",
                "early_access_claim": "press",
            }
        ]
    }
}


async def status(proxy, token, content_id):
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{proxy.http_url}/v1/licenses/clearkey",
            params={"content_id": content_id},
            data=CHALLENGE,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, (await response.json(content_type=None))


async def test_embargo_until_release(proxy_factory, dev_token, fake_clock):
    fake_clock.now = 1_800_000_000  # 2027-01-15
    proxy = await proxy_factory(proxy_config(CONFIG), plugins=[Embargo()], clock=fake_clock)
    token = dev_token(now=fake_clock.now)
    code, body = await status(proxy, token, "premiere-42")
    assert (code, body["reason"]) == (403, "NOT_ENTITLED")
    assert (await status(proxy, dev_token({"press": True}, now=fake_clock.now), "premiere-42"))[
        0
    ] == 200
    assert (await status(proxy, token, "catalogue-7"))[0] == 200
    fake_clock.advance(60 * 86400)  # past the release
    assert (await status(proxy, dev_token(now=fake_clock.now), "premiere-42"))[0] == 200
