"""Key ids to track types: the content catalog, inline in config or in a file.

The catalog is read once at start into two dictionaries, so a lookup per key
is a dictionary access however large it is.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.policy.settings import CatalogSettings
from proxy import ConfigContext, parse_key_id
from proxy.model import key_id_uuid
from proxy.policy import TrackType


@dataclass(slots=True)
class KeyCatalog:
    """Which keys each content holds and each key's track type.

    :ivar by_key: key id -> track type, over every content.
    :ivar by_content: content id -> its key ids and their track types.
    """

    by_key: dict[bytes, TrackType] = field(default_factory=dict)
    by_content: dict[str, dict[bytes, TrackType]] = field(default_factory=dict)
    owners: dict[bytes, set[str]] = field(default_factory=dict)
    """key id -> the contents that list it."""

    def foreign_keys(self, key_ids: Iterable[bytes], content_id: str | None) -> list[bytes]:
        """Requested keys the catalog files under other contents than ``content_id``.

        A caller names the content (entitlement and election key on it) but the CDM
        names the keys: a key the catalog knows must belong to the content asked for.
        """
        if content_id is None:
            return []
        return [k for k in key_ids if k in self.owners and content_id not in self.owners[k]]

    def track_types(
        self, key_ids: Iterable[bytes], content_id: str | None
    ) -> dict[bytes, TrackType]:
        """The track types of the requested keys; with no key ids, the content's keys."""
        key_ids = tuple(key_ids)
        if key_ids:
            return {k: self.by_key[k] for k in key_ids if k in self.by_key}
        if content_id is not None:
            return dict(self.by_content.get(content_id, {}))
        return {}

    def __len__(self) -> int:
        return len(self.by_key)


def _read_file(path: Path) -> Any:
    text = path.read_bytes()
    if path.suffix.lower() == ".toml":
        return tomllib.loads(text.decode("utf-8"))
    return json.loads(text)


def load_catalog(config: ConfigContext, settings: CatalogSettings) -> KeyCatalog:
    """Build the catalog from ``[catalog]`` (inline contents, then the file), recording
    every mistake on ``config`` with its key path."""
    catalog = KeyCatalog()
    _add_contents(config, catalog, settings.contents, "catalog.contents")
    if settings.file is not None:
        try:
            document = _read_file(settings.file)
        except OSError as exc:
            config.error("catalog.file", f"cannot read {settings.file}: {exc.strerror}")
            return catalog
        except (ValueError, UnicodeDecodeError) as exc:
            config.error("catalog.file", f"{settings.file} is not valid JSON or TOML: {exc}")
            return catalog
        contents = document.get("contents") if isinstance(document, dict) else None
        if not isinstance(contents, dict):
            config.error("catalog.file", f'{settings.file}: expected {{"contents": {{...}}}}')
            return catalog
        validated = config.validate(
            f"catalog.file({settings.file.name})", CatalogSettings, {"contents": contents}
        )
        if validated is not None:
            _add_contents(
                config, catalog, validated.contents, f"catalog.file({settings.file.name}).contents"
            )
    return catalog


def _add_contents(
    config: ConfigContext,
    catalog: KeyCatalog,
    contents: Mapping[str, Mapping[str, TrackType]],
    where: str,
) -> None:
    for content_id, keys in contents.items():
        table = catalog.by_content.setdefault(content_id, {})
        for text, track in keys.items():
            path = f"{where}.{content_id}.{text}"
            try:
                key_id = parse_key_id(text)
            except ValueError as exc:
                config.error(path, str(exc))
                continue
            known = catalog.by_key.get(key_id)
            if known is not None and known is not track:
                config.error(
                    path,
                    f"key {key_id_uuid(key_id)} is {track.value} here but {known.value} elsewhere",
                )
                continue
            catalog.by_key[key_id] = track
            table[key_id] = track
            catalog.owners.setdefault(key_id, set()).add(content_id)
