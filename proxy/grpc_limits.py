"""How big a gRPC call may be: our own limits, and the transport's, set well above them.

grpc answers input over its own limits with a bare RESOURCE_EXHAUSTED (no
``ErrorInfo``, no request id). So the transport limits sit far above ours, and
everything up to them reaches a typed check: a challenge over
``server.max_challenge_bytes`` is CHALLENGE_TOO_LARGE, a token over
``server.max_token_bytes`` TOKEN_MALFORMED, more metadata entries than
:data:`MAX_METADATA_ENTRIES` REQUEST_INVALID. Only what lies beyond the transport limits (docs/operations.md,
Reliability) still meets grpc's own answer.
"""

from __future__ import annotations

from collections.abc import Collection

from proxy.config import ServerConfig
from proxy.errors import ProxyError, Reason

MIB = 1024 * 1024
#: The least the transport accepts in one message, and in one call's metadata.
MESSAGE_FLOOR = 4 * MIB
METADATA_FLOOR = 1 * MIB


def largest_request(server: ServerConfig) -> int:
    """The largest request message ours can accept: the largest challenge, a token, the rest."""
    return server.challenge_limit(None) + server.max_token_bytes + 64 * 1024


def message_ceiling(server: ServerConfig) -> int:
    """``grpc.max_receive_message_length``: four times our largest, and at least 4 MiB."""
    return max(MESSAGE_FLOOR, 4 * largest_request(server))


#: The most metadata entries a call may carry (aiohttp's limit on an HTTP request's headers).
MAX_METADATA_ENTRIES = 128


def metadata_ceiling(server: ServerConfig) -> int:
    """``grpc.max_metadata_size`` (soft and hard alike: between the two, grpc refuses at
    random): room for an oversize token (TOKEN_MALFORMED) many times over, and at least 1 MiB."""
    return max(METADATA_FLOOR, 8 * (2 * server.max_token_bytes + 16 * 1024))


def check_metadata(pairs: Collection[tuple[str, str | bytes]]) -> None:
    """REQUEST_INVALID when the call carries more than :data:`MAX_METADATA_ENTRIES` entries.
    One large entry is left to the rule that reads it (an oversize token is TOKEN_MALFORMED)."""
    if len(pairs) > MAX_METADATA_ENTRIES:
        raise ProxyError(
            Reason.REQUEST_INVALID,
            f"the call carries more than {MAX_METADATA_ENTRIES} metadata entries",
        )


__all__ = ["MAX_METADATA_ENTRIES", "check_metadata", "message_ceiling", "metadata_ceiling"]
