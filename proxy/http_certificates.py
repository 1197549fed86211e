"""``GET /v1/certificates/{widevine|fairplay}``: the certificate as raw bytes, with the
caching headers that let players and CDNs keep it (``Cache-Control``, ``ETag``, 304)."""

from __future__ import annotations

from aiohttp import hdrs, web

from proxy.certificates import certificate_request, fetch_certificate
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, LicenseRequest
from proxy.pipeline import Pipeline

CONTENT_TYPE = "application/octet-stream"


async def certificate_response(
    pipeline: Pipeline, request: web.Request, model: LicenseRequest
) -> web.Response:
    """The answer to a certificate GET; ``model`` carries the request's headers and client."""
    try:
        drm = DrmSystem(request.match_info["drm"])
    except ValueError:
        raise ProxyError(
            Reason.DRM_NOT_SUPPORTED, "certificates are served for widevine and fairplay"
        ) from None
    certificate = await fetch_certificate(pipeline, certificate_request(drm, model))
    # A certificate fetched with a token is not for shared caches to hand to others.
    scope = "private" if pipeline.server.certificates.require_token else "public"
    max_age = int(certificate.max_age)
    headers = {
        hdrs.CACHE_CONTROL: f"{scope}, max-age={max_age}" if max_age > 0 else "no-cache",
        hdrs.ETAG: certificate.etag,
    }
    if certificate.etag in _tags(request.headers.get(hdrs.IF_NONE_MATCH)):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=certificate.data, headers=headers)
    response.headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE
    return response


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


__all__ = ["certificate_response"]
