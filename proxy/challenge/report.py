"""What an inspection found, as plain data for people and scripts (``license-proxy inspect``).

Details that may carry secrets (PlayReady custom data holds tokens for some
vendors) are shown by size only.
"""

from __future__ import annotations

from typing import Any

from proxy.challenge.common import safe_text
from proxy.model import ChallengeInfo

#: Detail keys whose values are never printed.
SECRET_DETAILS = frozenset({"playready_custom_data"})


def _shown(key: str, value: Any) -> Any:
    if key in SECRET_DETAILS:
        return f"<{len(str(value))} characters, not shown>"
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, bool | int | float) or value is None:
        return value
    return safe_text(str(value), 256)


def describe(info: ChallengeInfo) -> dict[str, Any]:
    """A JSON-ready summary of ``info``: DRM, request type, key ids as UUIDs,
    content id, client facts, warnings and the displayable details."""
    return {
        "drm_system": info.drm_system.value,
        "request_type": info.request_type.value,
        "key_ids": info.key_id_uuids,
        "content_id": info.content_id,
        "client": dict(info.client),
        "warnings": list(info.warnings),
        "details": {key: _shown(key, value) for key, value in info.details.items()},
        "payload_bytes": len(info.payload),
    }


def render_text(summary: dict[str, Any]) -> str:
    """The summary as aligned lines for a terminal."""
    lines = [
        f"drm system    {summary['drm_system']}",
        f"request type  {summary['request_type']}",
        f"key ids       {', '.join(summary['key_ids']) or '(none)'}",
        f"content id    {summary['content_id'] or '(none)'}",
        f"payload       {summary['payload_bytes']} bytes",
    ]
    for title, key in (("client", "client"), ("details", "details")):
        items = summary[key]
        lines.append(f"{title}{'' if items else '        (none)'}")
        lines.extend(f"  {name}: {value}" for name, value in sorted(items.items()))
    lines.append("warnings" + ("" if summary["warnings"] else "      (none)"))
    lines.extend(f"  - {warning}" for warning in summary["warnings"])
    return "\n".join(lines)
