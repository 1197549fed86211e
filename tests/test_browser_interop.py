"""What browser players need of the HTTP bridge, on a real proxy: CORS in credentials mode,
a token in a cookie (refused from a page whose origin is not allowed), and DASH-IF problem
types with configurable user-facing text. The same paths with real players in headless
Chromium are in tests/players/."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict

from plugins.token.config import AuthConfig
from plugins.token.sources import cookie_value, find_token
from proxy import hookimpl
from proxy.builder import build_pipeline
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import LicenseRequest
from proxy.problem_types import INSUFFICIENT_PROOF, NOT_AUTHORIZED
from proxy.testing import proxy_config
from tests.conftest import clearkey_request
from tests.token_support import KID

PAGE = "http://player.example.test"
OTHER_PAGE = "http://evil.example.test"


class LicenseLog:
    """Records what the pipeline issued and refused (an observer plugin)."""

    def __init__(self) -> None:
        self.issued = 0
        self.denied: list[str] = []

    @hookimpl
    def proxy_license_issued(self, ctx: Any, result: Any) -> None:
        """Count an issued license."""
        self.issued += 1

    @hookimpl
    def proxy_license_denied(self, ctx: Any, error: ProxyError) -> None:
        """Keep a refusal's reason."""
        self.denied.append(error.reason.value)


def browser_config(*, credentials: bool = True, cookie: str | None = "lp_token") -> dict:
    overrides: dict[str, Any] = {
        "server": {"cors": {"allow_origins": [PAGE], "allow_credentials": credentials}}
    }
    if cookie:
        overrides["auth"] = {"cookie": cookie}
    return proxy_config(overrides)


def config_errors(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        build_pipeline(raw)
    return caught.value.errors


async def post_license(proxy: Any, http: Any, **headers: str) -> tuple[int, dict, Any]:
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey", data=clearkey_request(KID), headers=headers
    ) as response:
        body = await response.read()
        problem = json.loads(body) if response.status != 200 else {}
        return response.status, problem, response.headers


# -- CORS in credentials mode -------------------------------------------------------------


async def test_credentials_mode_echoes_the_origin_and_allows_credentials(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory(browser_config(cookie=None))
    preflight = {
        "Origin": PAGE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    url = f"{proxy.http_url}/v1/licenses/clearkey"
    async with http.options(url, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Vary"] == "Origin"
    status, _, headers = await post_license(
        proxy, http, Origin=PAGE, Authorization=f"Bearer {dev_token()}"
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == PAGE
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


async def test_a_refused_origin_gets_no_grant_but_the_answer_still_varies_on_origin(
    proxy_factory, http
):
    proxy = await proxy_factory(browser_config(cookie=None))
    url = f"{proxy.http_url}/v1/licenses/clearkey"
    async with http.options(url, headers={"Origin": OTHER_PAGE}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
        # A cache keyed without Origin could hand this refusal to the allowed page.
        assert response.headers["Vary"] == "Origin"


async def test_without_credentials_mode_no_credentials_header(proxy_factory, http):
    proxy = await proxy_factory(browser_config(credentials=False, cookie=None))
    url = f"{proxy.http_url}/v1/licenses/clearkey"
    async with http.options(url, headers={"Origin": PAGE}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_credentials_with_any_origin_is_refused_at_start():
    raw = proxy_config({"server": {"cors": {"allow_origins": ["*"], "allow_credentials": True}}})
    [(path, message)] = config_errors(raw)
    assert path == "server.cors"
    assert "allow_credentials" in message and '"*"' in message


# -- a token in a cookie ------------------------------------------------------------------


async def test_a_cookie_token_from_an_allowed_page_or_no_page_is_accepted(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory(browser_config())
    cookie = f'_ga=GA1.1.2; prefs={{"a": 1}}; lp_token={dev_token()}; other=x'
    status, _, headers = await post_license(proxy, http, Origin=PAGE, Cookie=cookie)
    assert status == 200
    assert headers["Access-Control-Allow-Credentials"] == "true"
    # A request with no Origin is not a browser page's cross-origin request (curl, an app).
    status, _, _ = await post_license(proxy, http, Cookie=cookie)
    assert status == 200


@pytest.mark.parametrize("origin", [OTHER_PAGE, "null", PAGE + ":8443", PAGE.upper()])
async def test_a_cookie_token_from_another_origin_is_refused_and_spends_nothing(
    proxy_factory, http, dev_token, origin
):
    log = LicenseLog()
    config = browser_config()
    config["access"] = {"replay": {"max_uses": 1}}
    proxy = await proxy_factory(config, plugins=[("license_log", log)])
    token = dev_token({"jti": "one-use"})
    status, problem, headers = await post_license(
        proxy, http, Origin=origin, Cookie=f"lp_token={token}"
    )
    assert (status, problem["reason"]) == (403, "ORIGIN_NOT_ALLOWED")
    assert problem["type"] == NOT_AUTHORIZED
    assert "Access-Control-Allow-Origin" not in headers
    assert (log.issued, log.denied) == (0, ["ORIGIN_NOT_ALLOWED"])
    # The single use was not spent: the same token from the allowed page still works.
    status, _, _ = await post_license(proxy, http, Origin=PAGE, Cookie=f"lp_token={token}")
    assert status == 200 and log.issued == 1


async def test_an_authorization_header_wins_over_the_cookie(proxy_factory, http, dev_token):
    """A foreign page can make the browser send the cookie, never the Authorization
    header: a request that carries one is judged by it, whatever its origin."""
    proxy = await proxy_factory(browser_config())
    status, _, _ = await post_license(
        proxy,
        http,
        Origin=OTHER_PAGE,
        Cookie=f"lp_token={dev_token()}",
        Authorization=f"Bearer {dev_token()}",
    )
    assert status == 200


async def test_a_request_with_no_token_cookie_is_token_missing(proxy_factory, http):
    proxy = await proxy_factory(browser_config())
    status, problem, _ = await post_license(proxy, http, Origin=PAGE, Cookie="lp_token=; x=1")
    assert (status, problem["reason"]) == (401, "TOKEN_MISSING")


def test_cookie_parsing_reads_every_cookie_header_pair_by_pair():
    headers = CIMultiDict([("Cookie", 'a=1; broken; b="x y"'), ("Cookie", "lp=tok; lp=second")])
    assert cookie_value(headers, "lp") == "tok"
    assert cookie_value(headers, "b") == "x y"
    assert cookie_value(headers, "broken") is None
    assert cookie_value({"cookie": "lp_token=abc"}, "lp_token") == "abc"
    assert cookie_value({}, "lp_token") is None


def test_the_cookie_is_the_last_source():
    settings = AuthConfig(cookie="lp", query_parameter="t")
    request = LicenseRequest(
        challenge=b"", headers={"cookie": "lp=from-cookie"}, query={"t": "from-query"}
    )
    assert find_token(request, settings) == "from-query"
    request = LicenseRequest(challenge=b"", headers={"cookie": "lp=c", "origin": PAGE})
    with pytest.raises(ProxyError) as caught:
        find_token(request, settings)
    assert caught.value.reason is Reason.ORIGIN_NOT_ALLOWED
    assert find_token(request, settings, origins=frozenset({PAGE})) == "c"


def test_a_cookie_with_any_origin_is_refused_and_the_odd_setups_are_warned_about():
    errors = config_errors(
        proxy_config({"auth": {"cookie": "lp"}, "server": {"cors": {"allow_origins": ["*"]}}})
    )
    assert [path for path, _ in errors] == ["auth.cookie"]
    pipeline = build_pipeline(
        proxy_config({"auth": {"cookie": "lp"}, "server": {"cors": {"allow_origins": []}}})
    )
    assert any(path == "auth.cookie" and "empty" in m for path, m in pipeline.warnings)
    pipeline = build_pipeline(browser_config(credentials=False))
    assert any(path == "auth.cookie" and "credentials" in m for path, m in pipeline.warnings)
    errors = config_errors(proxy_config({"auth": {"cookie": "lp token"}}))
    assert [path for path, _ in errors] == ["auth.cookie"]


# -- DASH-IF problem types ----------------------------------------------------------------


async def test_license_errors_carry_dash_if_problem_types(proxy_factory, http):
    proxy = await proxy_factory()
    status, problem, _ = await post_license(proxy, http)
    assert (status, problem["reason"]) == (401, "TOKEN_MISSING")
    assert problem["type"] == INSUFFICIENT_PROOF
    assert problem["title"] == "Not authorized"
    assert "href" not in problem and "proxy_detail" not in problem
    async with http.post(f"{proxy.http_url}/v1/licenses/clearkey", data=b"{}") as response:
        problem = await response.json(content_type=None)
        assert problem["reason"] == "CHALLENGE_INVALID"
        assert problem["type"] == "about:blank"
        assert problem["title"] == Reason.CHALLENGE_INVALID.title


async def test_configured_text_and_link_per_reason(proxy_factory, http, dev_token):
    config = proxy_config(
        {
            "access": {"ip": {"deny": ["127.0.0.0/8"]}},
            "server": {
                "problems": {
                    "IP_NOT_ALLOWED": {
                        "title": "Not available in your region",
                        "detail": "This title can't be played where you are.",
                        "href": "https://help.example.test/regions",
                        "href_title": "Where can I watch?",
                    },
                    "CHALLENGE_INVALID": {"type": "https://example.test/problems/challenge"},
                }
            },
        }
    )
    proxy = await proxy_factory(config)
    status, problem, _ = await post_license(proxy, http, Authorization=f"Bearer {dev_token()}")
    assert (status, problem["reason"]) == (403, "IP_NOT_ALLOWED")
    assert problem["type"] == NOT_AUTHORIZED
    assert problem["title"] == "Not available in your region"
    assert problem["detail"] == "This title can't be played where you are."
    assert problem["href"] == "https://help.example.test/regions"
    assert problem["hrefTitle"] == "Where can I watch?"
    assert "127.0.0.1" not in problem["detail"] and problem["proxy_detail"]
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=b"{}",
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        problem = await response.json(content_type=None)
        assert problem["type"] == "https://example.test/problems/challenge"
        assert problem["title"] == Reason.CHALLENGE_INVALID.title


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ({"NO_SUCH_REASON": {"title": "x"}}, "server.problems.NO_SUCH_REASON"),
        ({"NOT_ENTITLED": {"href": "https://x.example.test/"}}, "server.problems.NOT_ENTITLED"),
        ({"NOT_ENTITLED": {"type": "not a uri"}}, "server.problems.NOT_ENTITLED.type"),
        ({"NOT_ENTITLED": {"colour": "red"}}, "server.problems.NOT_ENTITLED.colour"),
    ],
)
def test_bad_problem_text_fails_at_start_with_its_key_path(text, path):
    errors = config_errors(proxy_config({"server": {"problems": text}}))
    assert [p for p, _ in errors] and all(p.startswith(path) for p, _ in errors), errors
