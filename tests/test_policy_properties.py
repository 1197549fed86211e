"""Properties of tightening, over generated rule sets: never looser, idempotent, and the
merge of rules touching one key is order-free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.policy import (
    STRICTNESS,
    CgmsA,
    FairPlayHdcp,
    Hdcp,
    LicenseSettings,
    PlayReadyOutputProtection,
    PlayReadySecurityLevel,
    RenewalSettings,
    TrackRules,
    WidevineSecurityLevel,
)

maybe = st.none().__or__

opl = maybe(st.integers(min_value=100, max_value=500))
track_rules = st.builds(
    TrackRules,
    widevine_security_level=maybe(st.sampled_from(WidevineSecurityLevel)),
    hdcp=maybe(st.sampled_from(Hdcp)),
    cgms_a=maybe(st.sampled_from(CgmsA)),
    disable_analog_output=maybe(st.booleans()),
    playready_min_security_level=maybe(st.sampled_from(PlayReadySecurityLevel)),
    playready_output_protection=maybe(
        st.builds(
            PlayReadyOutputProtection,
            analog_video=opl,
            compressed_digital_audio=opl,
            uncompressed_digital_audio=opl,
            compressed_digital_video=opl,
            uncompressed_digital_video=opl,
        )
    ),
    fairplay_hdcp=maybe(st.sampled_from(FairPlayHdcp)),
    fairplay_allow_airplay=maybe(st.booleans()),
    fairplay_allow_av_adapter=maybe(st.booleans()),
)
seconds = maybe(st.integers(min_value=0, max_value=10**7))
instants = maybe(
    st.integers(min_value=0, max_value=10**6).map(
        lambda s: datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
    )
)
license_settings = st.builds(
    LicenseSettings,
    can_play=maybe(st.booleans()),
    persistent=maybe(st.booleans()),
    license_duration=seconds,
    rental_duration=seconds,
    playback_duration=seconds,
    expiry=instants,
    renewal=st.builds(
        RenewalSettings,
        enabled=maybe(st.booleans()),
        recovery_window=seconds,
        delay=seconds,
        renew_with_usage=maybe(st.booleans()),
    ),
)


def at_least_as_strict(stricter, base) -> bool:
    """Every field of ``stricter`` ranks at least as high as in ``base``; fields that are no
    restriction are unchanged."""
    orders = STRICTNESS[type(base)]
    for name in type(base).model_fields:
        a, b = getattr(stricter, name), getattr(base, name)
        if name in orders:
            order = orders[name]
            if order.rank is None:
                if a != b:
                    return False
            elif order.rank(a) < order.rank(b):
                return False
        elif b is not None and not at_least_as_strict(a, b):
            return False
    return True


@settings(deadline=None, max_examples=300)
@given(base=track_rules, claim=track_rules)
def test_track_tightening_never_loosens_and_is_idempotent(base, claim):
    result = base.tightened_by(claim)
    assert at_least_as_strict(result.value, base)
    assert result.value.tightened_by(claim).applied == ()
    assert (result.value == base) == (result.applied == ())


@settings(deadline=None, max_examples=300)
@given(base=license_settings, claim=license_settings)
def test_license_tightening_never_loosens(base, claim):
    result = base.tightened_by(claim)
    assert at_least_as_strict(result.value, base)
    assert result.value.tightened_by(claim).applied == ()


@settings(deadline=None, max_examples=300)
@given(a=track_rules, b=track_rules, c=track_rules)
def test_the_most_restrictive_merge_is_order_free(a, b, c):
    assert a.most_restrictive(b) == b.most_restrictive(a)
    assert a.most_restrictive(b, c) == c.most_restrictive(b, a)
    merged = a.most_restrictive(b)
    assert at_least_as_strict(merged, a) and at_least_as_strict(merged, b)
