"""The policy vocabulary: track types and the output-protection levels rules speak of."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class TrackType(StrEnum):
    """Track types as Widevine, Verimatrix and Axinom name them."""

    AUDIO = "AUDIO"
    SD = "SD"
    HD = "HD"
    UHD1 = "UHD1"
    UHD2 = "UHD2"


#: The ``tracks`` key whose rules apply to keys of no known track type.
DEFAULT_TRACK = "DEFAULT"


class WidevineSecurityLevel(IntEnum):
    """Widevine robustness levels 1-5 (``content_key_specs.security_level``)."""

    SW_SECURE_CRYPTO = 1
    SW_SECURE_DECODE = 2
    HW_SECURE_CRYPTO = 3
    HW_SECURE_DECODE = 4
    HW_SECURE_ALL = 5


class RankedEnum(StrEnum):
    """A string enum whose members are declared weakest first."""

    @property
    def rank(self) -> int:
        """Higher is stricter (the member's place in the declaration)."""
        return type(self)._member_names_.index(self.name)


class Hdcp(RankedEnum):
    """Required HDCP version on digital outputs, weakest first."""

    NONE = "HDCP_NONE"
    V1 = "HDCP_V1"
    V2 = "HDCP_V2"
    V2_1 = "HDCP_V2_1"
    V2_2 = "HDCP_V2_2"
    V2_3 = "HDCP_V2_3"
    NO_DIGITAL_OUTPUT = "HDCP_NO_DIGITAL_OUTPUT"


class CgmsA(RankedEnum):
    """CGMS-A copy control on analog outputs, weakest first."""

    COPY_FREE = "COPY_FREE"
    COPY_ONCE = "COPY_ONCE"
    COPY_NEVER = "COPY_NEVER"


class PlayReadySecurityLevel(IntEnum):
    """PlayReady minimum client security level."""

    SL150 = 150
    SL2000 = 2000
    SL3000 = 3000


class FairPlayHdcp(RankedEnum):
    """FairPlay HDCP enforcement, weakest first (Axinom's names)."""

    NONE = "NONE"
    TYPE0 = "TYPE0"
    TYPE1 = "TYPE1"
    TYPE1_STRICT = "TYPE1_STRICT"
