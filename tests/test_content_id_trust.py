"""The content id entitlement and election key on can't be chosen by the caller against the
challenge: what the CDM or the catalog says about the keys wins (review finding, kept as
regressions)."""

from __future__ import annotations

import uuid

import pytest

from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, LicenseRequest
from proxy.testing import proxy_config
from tests.conftest import clearkey_request

PREMIUM_KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes

ENTITLED_BY_CONTENT = {
    "access": {"entitlement": {"rules": [{"claim": "content", "equals_content_id": True}]}},
}


def _entitlement_config(**extra) -> dict:
    return proxy_config({**ENTITLED_BY_CONTENT, **extra})


async def test_a_caller_cannot_swap_the_widevine_content_id(dev_token):
    pipeline = build_pipeline(_entitlement_config())
    challenge = samples.widevine_license_request(key_ids=[PREMIUM_KID], content_id=b"premium/movie")
    request = LicenseRequest(
        challenge=challenge,
        drm_system=DrmSystem.WIDEVINE,
        content_id="free/trailer",
        token=dev_token({"content": "free/trailer"}),
    )
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(request)
    assert raised.value.reason is Reason.REQUEST_INVALID


async def test_a_key_the_catalog_files_elsewhere_is_refused(dev_token):
    config = _entitlement_config(
        catalog={"contents": {"premium/movie": {str(uuid.UUID(bytes=PREMIUM_KID)): "HD"}}}
    )
    pipeline = build_pipeline(config)
    lie = LicenseRequest(
        challenge=clearkey_request(PREMIUM_KID),
        content_id="free/x",
        token=dev_token({"content": "free/x"}),
    )
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(lie)
    assert raised.value.reason is Reason.REQUEST_INVALID
    honest = LicenseRequest(
        challenge=clearkey_request(PREMIUM_KID),
        content_id="premium/movie",
        token=dev_token({"content": "premium/movie"}),
    )
    assert (await pipeline.acquire(honest)).license


async def test_the_fairplay_convention_is_what_later_hooks_see(dev_token):
    config = proxy_config(
        {
            "challenge": {"fairplay": {"content_id_convention": "verimatrix"}},
            "policies": [
                {"name": "movies", "backends": ["clearkey"], "match": {"content_ids": ["movie-*"]}},
            ],
        }
    )
    pipeline = build_pipeline(config)
    request = LicenseRequest(
        challenge=samples.fairplay_spc(),
        drm_system=DrmSystem.FAIRPLAY,
        content_id="skd://movie-1?iv=00",
        token=dev_token(),
        dry_run=True,
    )
    result = await pipeline.acquire(request)
    assert result.policy == "movies"
