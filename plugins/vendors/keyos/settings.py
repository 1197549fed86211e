"""``[backends.NAME]`` with ``vendor = "keyos"``: the signing key, its Key Hash, URLs, and the
choices BuyDRM's public material leaves open (VENDOR_FACTS 12), each a setting."""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, StringConstraints, model_validator

from proxy import PLAYREADY_CONTENT_TYPE, DrmSystem, Duration, Secret, UpstreamSettings

#: THEOplayer's KeyOS sample hosts (VERIFIED-CODE); which host set a tenant uses is UNVERIFIED.
DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://wv-keyos.licensekeyserver.com/",
    DrmSystem.PLAYREADY: "https://pr-keyos.licensekeyserver.com/core/rightsmanager.asmx",
    DrmSystem.FAIRPLAY: "https://fp-keyos.licensekeyserver.com/getkey/",
}
KEYOS_DRMS = frozenset(DEFAULT_URLS)
#: The headers KeyOS samples carry the Authentication XML in.
AUTH_HEADERS = ("customdata", "x-keyos-authorization")
#: The signing key BuyDRM's console imports: RSA 2048, public exponent 0x10001.
KEY_BITS = 2048
PUBLIC_EXPONENT = 0x10001

KeyHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]


class KeyOSSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "keyos"``."""

    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """License URL per DRM (take your tenant's host set from BuyDRM)."""
    signing_key: Secret
    """The Authentication XML signing key's private half: PEM, RSA 2048, e = 0x10001, by
    reference (its public half is imported in the KeyOS console)."""
    rsa_pub_key_id: KeyHash
    """``RSAPubKeyId``: the "Key Hash" the KeyOS console shows for that key (how it is
    derived is UNVERIFIED, so it is copied, not computed)."""
    auth_header: Literal["customdata", "x-keyos-authorization"] = "customdata"
    """The header carrying the base64 Authentication XML: Bitmovin's name, or THEOplayer's;
    which one every KeyOS host takes is UNVERIFIED."""
    auth_xml_ttl: Duration = Field(default=60.0, gt=0, le=3600)
    """``ExpirationTime`` - ``GenerationTime``; BuyDRM's sample recommends about a minute."""
    signature_digest: Literal["sha1", "sha256"] = "sha1"
    """The digest of the RSA PKCS#1 v1.5 signature: SHA-1 is the commonly cited choice
    (UNVERIFIED)."""
    signed_content: Literal["data", "data_c14n"] = "data"
    """What is signed: the ``<Data>`` element exactly as it stands in the XML, or its
    canonical (C14N) form. UNVERIFIED which; the XML the proxy writes has no whitespace,
    comments or namespaces, so the two differ only in how empty elements are closed."""
    restrict_keys: bool = False
    """List the request's allowed keys in ``KeyIDList`` (GUIDs), on the premise that KeyOS
    then licenses those keys only (UNVERIFIED): it is what lets this backend leave keys of
    track types a policy does not allow out. Off, such a policy fails the start."""
    send_username: bool = False
    """Send the token's subject as ``Username`` (seen in third-party tokens)."""
    fairplay_asset_id: bool = True
    """Send ``assetId`` (the content id) beside the SPC, as THEOplayer's sample does."""
    fairplay_content_type: str = "application/x-www-form-urlencoded"
    """The FairPlay form's Content-Type; THEOplayer's sample sets none (UNVERIFIED)."""
    playready_content_type: str = PLAYREADY_CONTENT_TYPE

    @model_validator(mode="after")
    def _urls_fit(self) -> KeyOSSettings:
        for drm, url in self.urls.items():
            if drm not in KEYOS_DRMS:
                raise ValueError(f"urls.{drm.value}: KeyOS serves no {drm.value}")
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")
        return self


def load_signing_key(settings: KeyOSSettings) -> rsa.RSAPrivateKey:
    """The signing key, parsed once at start and checked to be what KeyOS imports."""
    reference = settings.signing_key.reference
    try:
        key = load_pem_private_key(settings.signing_key.value, password=None)
    except (ValueError, TypeError):
        raise ValueError(
            f"signing_key ({reference}) is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"signing_key ({reference}) must be an RSA key")
    numbers = key.private_numbers().public_numbers
    if key.key_size != KEY_BITS or numbers.e != PUBLIC_EXPONENT:
        raise ValueError(
            f"signing_key ({reference}) must be RSA {KEY_BITS} bits with public exponent "
            "0x10001, the key KeyOS imports"
        )
    return key
