"""Real players and the session features of issue 13: a player that retries a license request
whose answer was lost gets its license with a single-use token (``retry_window``)."""

from __future__ import annotations

import pytest

from tests.players.harness import PageServer, play, serve_proxy
from tests.players.test_players import browser_config


@pytest.mark.parametrize("player", ["shaka", "dashjs"])
@pytest.mark.parametrize("window", [None, "30s"], ids=["no-retry-window", "retry-window"])
async def test_a_player_retry_after_a_dropped_answer_succeeds_with_max_uses_1(
    proxy_factory, browser, page_server: PageServer, dev_token, player, window
):
    """The proxy issues the license and spends the token's one use; the answer is lost
    on the way (the connection closes after the proxy sent it); the player sends the
    same request again. With ``retry_window`` that is the same use and playback starts;
    without, it is TOKEN_REPLAYED and the player gives up."""
    config = browser_config(page_server.origin, credentials=player == "dashjs")
    replay: dict = {"max_uses": 1}
    if window is not None:
        replay["retry_window"] = window
    config["access"] = {"replay": replay}
    served = await serve_proxy(proxy_factory, config)
    log, url = served.log, served.license_url
    result = await play(
        browser,
        page_server,
        player,
        url,
        authorization=f"Bearer {dev_token()}",
        drop_license_answers=1,
        license_attempts=2,
    )
    assert result.dropped == [url], result
    if window is None:
        assert not result.played, result
        assert log.issued == 1 and "TOKEN_REPLAYED" in log.denied
    else:
        assert result.played, result
        assert log.issued == 2 and not log.denied  # both answers made; the first was lost
