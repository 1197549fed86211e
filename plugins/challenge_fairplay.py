"""The ``challenge_fairplay`` plugin: inspects FairPlay SPCs in any framing.

Config (optional)::

    [challenge.fairplay]
    content_id_convention = "generic"   # or one a vendor package registers: "axinom", "verimatrix"
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy import ConfigContext, Secret, StrictModel, hookimpl
from proxy.challenge.common import guarded
from proxy.challenge.fairplay import (
    DRM,
    GENERIC,
    ContentIdConvention,
    looks_like_fairplay,
    parse_fairplay,
)
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class FairPlaySettings(StrictModel):
    """``[challenge.fairplay]``: how key URIs and asset ids name the content, and the
    application certificate players fetch from ``GET /v1/certificates/fairplay``."""

    content_id_convention: str = GENERIC.name
    """The name of a registered convention: the core's ``generic`` (the part after
    ``?``, else the last path segment), or a vendor package's (``axinom``:
    ``[skd://]<key id GUID>[:<IV hex>]``; ``verimatrix``: strip ``skd://`` and
    ``?query``)."""
    application_certificate: Secret | None = None
    """The FairPlay application certificate (DER or PEM) by reference (``file:fps.cer``);
    unset, the elected backend's ``fairplay_certificate_url`` serves it."""


class FairPlayInspector:
    """Claims FairPlay challenges: named as such, or an SPC, ``spc=`` form or
    ``{"spc"}`` JSON when undetected."""

    def __init__(self) -> None:
        self.convention: ContentIdConvention = GENERIC

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[challenge.fairplay]``; the convention is looked up among the registered ones."""
        settings = config.section("challenge.fairplay", FairPlaySettings)
        # Looked up even when another key of the section is wrong: every error at once.
        name = config.get("challenge.fairplay.content_id_convention", GENERIC.name)
        if not isinstance(name, str):
            return  # the section's validation reported it
        convention = config.fairplay_conventions.get(name)
        if convention is None and name == GENERIC.name:
            convention = GENERIC
        if convention is None:
            known = ", ".join(sorted({GENERIC.name, *config.fairplay_conventions}))
            config.error(
                "challenge.fairplay.content_id_convention",
                f"unknown convention {name!r} (registered: {known})",
            )
        elif settings is not None:
            self.convention = convention
        if settings is not None and settings.application_certificate is not None:
            self._serve_certificate(config, settings.application_certificate)

    @staticmethod
    def _serve_certificate(config: ConfigContext, reference: Secret) -> None:
        path = "challenge.fairplay.application_certificate"
        try:
            certificate = _load_certificate(reference.value)
        except ValueError:
            config.error(path, f"{reference.reference} is not an X.509 certificate (DER or PEM)")
            return
        if certificate.not_valid_after_utc.timestamp() < config.services.clock.time():
            config.warn(
                path, f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        der = certificate.public_bytes(serialization.Encoding.DER)
        config.serve_certificate(DrmSystem.FAIRPLAY, der, path)

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a FairPlay one; the payload becomes the raw SPC."""
        drm = ctx.request.drm_system
        body = ctx.request.challenge
        if drm is DrmSystem.FAIRPLAY or (drm is None and looks_like_fairplay(body)):
            return guarded(
                DRM,
                lambda: parse_fairplay(
                    body, content_id=ctx.request.content_id, convention=self.convention
                ),
            )
        return None


def _load_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)
