"""Content under embargo gets no license before its release date, unless the token grants
early access. Configured under ``[acme_embargo]``:

    [[acme_embargo.titles]]
    content_ids = ["movies/premiere-*"]
    release = 2027-03-01T00:00:00Z
    early_access_claim = "press"
"""

from __future__ import annotations

import fnmatch
from datetime import datetime

from pydantic import Field

from proxy import ProxyError, Reason, StrictModel, hookimpl


class Title(StrictModel):
    """Titles under one embargo."""

    content_ids: list[str] = Field(min_length=1)
    release: datetime
    early_access_claim: str | None = None


class EmbargoSettings(StrictModel):
    """``[acme_embargo]``."""

    titles: list[Title] = Field(default_factory=list)


class Embargo:
    """Refuses licenses for embargoed content before its release."""

    def __init__(self) -> None:
        self.settings = EmbargoSettings()
        self.clock = None

    @hookimpl
    def proxy_configure(self, config):
        """Read ``[acme_embargo]``; warn about a release without a time zone."""
        settings = config.section("acme_embargo", EmbargoSettings)
        if settings is None:
            return
        for i, title in enumerate(settings.titles):
            if title.release.tzinfo is None:
                config.error(f"acme_embargo.titles[{i}].release", "give a time zone (e.g. Z)")
        self.settings = settings
        self.clock = config.services.clock

    @hookimpl
    def proxy_authorize(self, ctx, principal):
        """Deny NOT_ENTITLED while the requested content is under embargo."""
        content_id = ctx.content_id or ""
        now = self.clock.time()
        for title in self.settings.titles:
            if not any(fnmatch.fnmatchcase(content_id, p) for p in title.content_ids):
                continue
            if now >= title.release.timestamp():
                continue
            if title.early_access_claim and principal.claims.get(title.early_access_claim) is True:
                ctx.note(f"{content_id}: early access through {title.early_access_claim}")
                continue
            raise ProxyError(Reason.NOT_ENTITLED, "this title is not released yet")
