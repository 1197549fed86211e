"""The JSON routes name an unknown field that is a near-miss of a defined one, with the field
it resembles, and list the defined fields otherwise; never a value."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"challenge": "", "tokn": "x"}, "unknown field 'tokn' (did you mean 'token'?)"),
        ({"challenge": "", "surprise": 1}, "does not define (its fields: drmSystem, challenge"),
        ({"client": {"ip": "203.0.113.9"}}, "unknown field 'ip' in client (did you mean"),
        ({"client": {"device": "d"}}, "(did you mean 'deviceId'?)"),
    ],
)
async def test_an_unknown_field_is_named(proxy_factory, http, body, detail):
    proxy = await proxy_factory()
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as response:
        problem = await response.json(content_type=None)
    assert (response.status, problem["reason"]) == (400, "REQUEST_INVALID")
    assert detail in problem["detail"]


@pytest.mark.parametrize("shape", ["key", "array", "nested-array"])
async def test_a_token_where_a_field_name_goes_is_not_echoed(proxy_factory, http, dev_token, shape):
    proxy = await proxy_factory()
    token = dev_token()
    # protobuf reads an array's items as field names, so a value can land in its message.
    body = {"key": {token: 1}, "array": [token], "nested-array": {"client": [token]}}[shape]
    async with http.post(
        f"{proxy.http_url}/v1/challenge:inspect", data=json.dumps(body)
    ) as response:
        problem = await response.json(content_type=None)
    assert problem["reason"] == "REQUEST_INVALID"
    assert token not in json.dumps(problem)
    assert token.split(".")[0] not in json.dumps(problem)
