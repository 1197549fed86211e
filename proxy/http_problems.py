"""Errors over HTTP: RFC 9457 problem+json bodies, ``Retry-After``, aiohttp's own errors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import grpc
from aiohttp import web

from proxy.errors import ProxyError, Reason
from proxy.problem_types import ProblemText, problem_fields

PROBLEM_TYPE = "application/problem+json"
#: The reason code of a problem answer, kept on the response for the access log line.
REASON = web.ResponseKey("reason", str)


def problem(
    error: ProxyError,
    request_id: str,
    *,
    status: int | None = None,
    texts: Mapping[Reason, ProblemText] | None = None,
) -> web.Response:
    """An RFC 9457 problem+json answer for ``error``, with the DASH-IF problem type of its
    reason and the user-facing text ``texts`` (``server.problems``) configures for it."""
    status = status or error.http_status
    fields = problem_fields(error.reason, error.detail, texts)
    body: dict[str, Any] = {
        "type": fields.type,
        "title": fields.title,
        "status": status,
        "detail": fields.detail,
        "reason": error.reason.value,
        "request_id": request_id,
    }
    if fields.proxy_detail is not None:
        body["proxy_detail"] = fields.proxy_detail
    if fields.href is not None:
        body["href"] = fields.href
        body["hrefTitle"] = fields.href_title
    if error.metadata:
        body["metadata"] = error.metadata
    field = error.blamed_field
    if field is not None and error.grpc_code is grpc.StatusCode.INVALID_ARGUMENT:
        # RFC 9457 3.2 extension member, shaped as its own example's "invalid-params".
        body["invalid_params"] = [{"name": field, "reason": error.detail}]
    response = web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_TYPE, charset="utf-8"
    )
    delay = error.retry_delay if error.retry_delay is not None else error.retry_after
    if delay is not None:
        response.headers["Retry-After"] = retry_after_seconds(delay)
    response[REASON] = error.reason.value
    return response


def retry_after_seconds(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up: a client that waits that long finds
    the limit lifted (rounding down would send it back too early)."""
    return str(max(1, math.ceil(seconds)))


class RequestTimeout(ProxyError):
    """The request body did not arrive in time: REQUEST_INVALID, answered with HTTP 408."""

    http_status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            Reason.REQUEST_INVALID, f"the request body did not arrive within {seconds:g} s"
        )


class ClientGone(ProxyError):
    """The client closed the connection before its request body arrived: REQUEST_INVALID
    (never INTERNAL: it is the client's doing), though nobody is left to read the answer."""

    def __init__(self) -> None:
        super().__init__(
            Reason.REQUEST_INVALID, "the connection closed before the request body arrived"
        )


def transport_error(exc: web.HTTPException) -> tuple[ProxyError, int]:
    if exc.status == 413:
        return ProxyError(Reason.CHALLENGE_TOO_LARGE, "the request body is too large"), 413
    if exc.status == 404:
        return ProxyError(Reason.REQUEST_INVALID, "no such route"), 404
    if exc.status == 405:
        return ProxyError(Reason.REQUEST_INVALID, "method not allowed on this route"), 405
    return ProxyError(Reason.REQUEST_INVALID, exc.reason or "bad request"), exc.status


__all__ = [
    "PROBLEM_TYPE",
    "REASON",
    "ClientGone",
    "RequestTimeout",
    "problem",
    "retry_after_seconds",
    "transport_error",
]
