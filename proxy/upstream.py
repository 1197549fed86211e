"""The core's HTTP client for vendor backends: one pooled session per process.

Adapters never touch the network; the dispatcher hands their
:class:`~proxy.vendors.UpstreamRequest` to :meth:`UpstreamClient.send`, which
applies the backend's timeouts (bounded by the caller's deadline), sends the
request id as a correlation header, caps the response size and turns every
transport failure into an ``UPSTREAM_*`` reason.
"""

from __future__ import annotations

import logging
import time

import aiohttp

from proxy.errors import ProxyError, Reason
from proxy.vendors import Backend, UpstreamRequest, UpstreamResponse

log = logging.getLogger("proxy.upstream")

CORRELATION_HEADER = "X-Request-Id"


class UpstreamClient:
    """A pooled aiohttp session shared by every backend of a pipeline."""

    def __init__(self, *, user_agent: str = "drm-license-proxy") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent

    async def start(self) -> None:
        """Open the session; must run inside the serving event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                auto_decompress=True,
                trust_env=False,
            )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        backend: Backend,
        request: UpstreamRequest,
        *,
        request_id: str,
        deadline: float | None = None,
    ) -> UpstreamResponse:
        """Send ``request`` to ``backend``'s vendor and read the whole answer."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        settings = backend.settings
        total = settings.timeout
        if deadline is not None:
            total = min(total, deadline - time.monotonic())
            if total <= 0:
                raise ProxyError(Reason.UPSTREAM_TIMEOUT, "the caller's deadline has passed")
        timeout = aiohttp.ClientTimeout(
            total=total, sock_connect=min(settings.connect_timeout, total)
        )
        headers = dict(request.headers)
        headers.setdefault(CORRELATION_HEADER, request_id)
        try:
            async with self._session.request(
                request.method,
                request.url,
                data=request.body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                length = response.content_length
                if length is not None and length > settings.max_response_bytes:
                    raise _oversize(backend)
                body = await _read_limited(response, settings.max_response_bytes, backend)
                return UpstreamResponse(response.status, response.headers, body)
        except ProxyError:
            raise
        except TimeoutError:
            raise ProxyError(
                Reason.UPSTREAM_TIMEOUT, f"backend {backend.name!r} did not answer in time"
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            log.warning("backend %s unreachable: %s", backend.name, type(exc).__name__)
            raise ProxyError(
                Reason.UPSTREAM_UNAVAILABLE, f"backend {backend.name!r} is unreachable"
            ) from None
        except aiohttp.ClientResponseError:
            raise ProxyError(
                Reason.UPSTREAM_BAD_RESPONSE, f"backend {backend.name!r} answered unreadably"
            ) from None


def _oversize(backend: Backend) -> ProxyError:
    return ProxyError(
        Reason.UPSTREAM_BAD_RESPONSE, f"backend {backend.name!r} answered with an oversize body"
    )


async def _read_limited(response: aiohttp.ClientResponse, limit: int, backend: Backend) -> bytes:
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _oversize(backend)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["CORRELATION_HEADER", "UpstreamClient"]
