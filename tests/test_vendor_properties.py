"""Whatever a vendor answers, every registered adapter returns a license or raises a typed
UPSTREAM_* error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import ProxyError
from proxy.model import DrmSystem
from proxy.services import Services
from proxy.vendors import UpstreamResponse
from tests import vendor_matrix
from tests.test_vendor_common import RENTAL, challenge, make_call


def _adapter(vendor: str) -> Any:
    """The vendor's adapter, configured as its sandbox configures it (nothing is sent)."""
    spec = vendor_matrix.spec(vendor)
    assert spec.sandbox is not None
    section = spec.sandbox().backend("http://127.0.0.1:9")
    return spec.adapter(vendor, spec.settings.model_validate(section), Services())


#: Every registered vendor reached over HTTP.
ADAPTERS = {vendor: _adapter(vendor) for vendor in vendor_matrix.emulated()}
UPSTREAM = {"UPSTREAM_REJECTED", "UPSTREAM_UNAVAILABLE", "UPSTREAM_BAD_RESPONSE"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["OK", "ACCESS_DENIED", "INTERNAL_ERROR", 7]),
            "license": st.one_of(
                st.text(max_size=30),
                st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
            ),
        },
    ).map(lambda d: json.dumps(d).encode()),
    st.text(max_size=200).map(
        lambda t: f"<soap:Fault><faultstring>{t}</faultstring></soap:Fault>".encode()
    ),
    st.binary(max_size=64).map(lambda b: b"<ckc>" + base64.b64encode(b) + b"</ckc>"),
)
headers = st.dictionaries(
    st.sampled_from(["X-AxDRM-ErrorMessage", "X-AxDRM-Message", "Retry-After", "X-AxDRM-Identity"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    max_size=4,
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    vendor=st.sampled_from(sorted(ADAPTERS)),
    drm=st.sampled_from([DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY]),
    status=st.sampled_from([200, 200, 200, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503]),
    body=bodies,
    response_headers=headers,
)
def test_any_answer_is_a_license_or_a_typed_upstream_error(
    vendor, drm, status, body, response_headers
):
    call = make_call(RENTAL, challenge=challenge(drm), content_id="m")
    try:
        result = ADAPTERS[vendor].parse_response(
            call, UpstreamResponse(status, response_headers, body)
        )
    except ProxyError as error:
        assert error.reason.value in UPSTREAM
        for value in error.metadata.values():
            assert value.isprintable()
            assert len(value) <= 200
        return
    assert status == 200
    assert result.license


@pytest.mark.parametrize("vendor", sorted(ADAPTERS))
@pytest.mark.parametrize("status", [201, 204, 206])
def test_a_success_status_other_than_200_is_never_a_license(vendor, status):
    # Found by the property above: DoveRunner and DRMtoday took any 2xx with a license
    # member for a license, although no vendor documents one.
    call = make_call(RENTAL, challenge=challenge(DrmSystem.FAIRPLAY), content_id="m")
    body = b'{"license":"AA","ckc":"AA"}'
    with pytest.raises(ProxyError) as raised:
        ADAPTERS[vendor].parse_response(call, UpstreamResponse(status, {}, body))
    assert raised.value.reason.value in UPSTREAM
