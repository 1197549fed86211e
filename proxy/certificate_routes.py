"""``[server.certificates]``: who may fetch certificates, and how long players may keep them."""

from __future__ import annotations

from proxy.fields import Duration, StrictModel


class CertificateRoutes(StrictModel):
    """``[server.certificates]``: ``GET /v1/certificates/{drm}`` and ``GetCertificate``."""

    require_token: bool = False
    """Whether a valid token is needed. Certificates are public (every player gets the
    same one), so by default it is not; a token is then not even read."""
    max_age: Duration = 86400.0
    """``Cache-Control`` max-age for a certificate given in config. One fetched from a
    backend is kept, and may be cached by players, for its ``service_certificate_cache``."""
