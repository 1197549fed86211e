"""What an inspection found, as plain data for people and scripts (``license-proxy inspect``).

Details that may carry secrets (PlayReady custom data holds tokens for some
vendors) are shown by size only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.challenge.common import safe_text
from proxy.challenge.initdata import InitDataInfo
from proxy.model import ChallengeInfo, key_id_uuid

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


def shown_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` made safe to show: secrets by size, bytes in hex, text bounded."""
    return {key: _shown(key, value) for key, value in details.items()}


def describe(info: ChallengeInfo | InitDataInfo) -> dict[str, Any]:
    """A JSON-ready summary of ``info``: DRM, request type, key ids as UUIDs,
    content id, client facts, warnings and the displayable details; for init data,
    its format and each protection system's entry."""
    if isinstance(info, InitDataInfo):
        drm = info.drm_system
        return {
            "format": info.format,
            "drm_system": drm.value if drm is not None else None,
            "key_ids": info.key_id_uuids,
            "content_id": info.content_id,
            "protection_systems": [
                {
                    "system": system.system,
                    "system_id": system.system_uuid,
                    "pssh_version": system.pssh_version,
                    "key_ids": [key_id_uuid(k) for k in system.key_ids],
                    "content_id": system.content_id,
                    "details": shown_details(system.details),
                }
                for system in info.systems
            ],
            "warnings": list(info.warnings),
        }
    return {
        "format": "challenge",
        "drm_system": info.drm_system.value,
        "request_type": info.request_type.value,
        "key_ids": info.key_id_uuids,
        "content_id": info.content_id,
        "client": dict(info.client),
        "warnings": list(info.warnings),
        "details": shown_details(info.details),
        "payload_bytes": len(info.payload),
    }


_FORMATS = {
    "pssh": "CENC init data (pssh boxes)",
    "playready_object": "a PlayReady Header Object",
    "wrmheader": "a PlayReady WRMHEADER",
    "keyids": "W3C keyids init data",
}


def render_text(summary: dict[str, Any]) -> str:
    """The summary as aligned lines for a terminal."""
    if summary["format"] != "challenge":
        return _render_init_data(summary)
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
    lines.extend(_render_warnings(summary["warnings"]))
    return "\n".join(lines)


def _render_init_data(summary: dict[str, Any]) -> str:
    lines = [
        f"init data     {_FORMATS.get(summary['format'], summary['format'])}",
        f"drm system    {summary['drm_system'] or '(several)'}",
        f"key ids       {', '.join(summary['key_ids']) or '(none)'}",
        f"content id    {summary['content_id'] or '(none)'}",
    ]
    for number, system in enumerate(summary["protection_systems"], 1):
        lines.append(
            f"system {number}      {system['system']} ({system['system_id']}), "
            f"pssh version {system['pssh_version']}"
        )
        lines.append(f"  key ids: {', '.join(system['key_ids']) or '(none)'}")
        if system["content_id"]:
            lines.append(f"  content id: {system['content_id']}")
        lines.extend(f"  {name}: {value}" for name, value in sorted(system["details"].items()))
    lines.extend(_render_warnings(summary["warnings"]))
    return "\n".join(lines)


def _render_warnings(warnings: list[str]) -> list[str]:
    return ["warnings" + ("" if warnings else "      (none)"), *(f"  - {w}" for w in warnings)]
