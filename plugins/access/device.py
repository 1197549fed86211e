"""The ``access_device`` plugin: device allow and deny lists, and policies that need a device id.

The device id comes from the token's ``device`` claim (the device the token
was issued for, as Verimatrix defines it), from the gRPC ``client.device_id``
of a trusted caller, or from a configured request header. When a request
names more than one and they disagree, it is refused: a token issued for one
device is not good on another.

Lists are inline, in files, or both; a file is re-read when it changes
(checked every ``reload_interval``, read off the event loop) and swapped in
whole, so requests never see half a list and none is dropped. A file that
can't be read keeps the previous list and is logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from plugins.access.claims import MAX_ID_LENGTH
from plugins.access.metrics import ACCESS_DENIALS, LIST_RELOADS
from proxy import ConfigContext, ConfigPath, Duration, ProxyError, Reason, StrictModel, hookimpl
from proxy.model import Principal, RequestContext
from proxy.policy import EffectivePolicy

log = logging.getLogger("plugins.access.device")

RULE = "access_device"
#: ``ctx.extras`` key of the device id found at authorization (policy rules reuse it).
DEVICE_ID = "access.device_id"


class DeviceSettings(StrictModel):
    """``[access.device]``: which devices may obtain licenses."""

    claim: str | None = "device"
    """The token claim naming the device the token was issued for; empty to ignore it."""
    header: str | None = None
    """A request header (or gRPC metadata key) carrying the device id."""
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    allow_file: ConfigPath | None = None
    """A file of allowed device ids, one per line (``#`` comments), re-read when it changes."""
    deny_file: ConfigPath | None = None
    """A file of refused device ids, one per line, re-read when it changes."""
    reload_interval: Duration = 5.0
    """Seconds between checks of the list files for changes."""
    require: bool = False
    """Refuse requests that name no device."""
    ignore_case: bool = False
    """Compare ids without regard to case (GUIDs written in either case)."""

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None

    @field_validator("reload_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


def _file_signature(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class DeviceList:
    """Device ids from inline values and an optional file, swapped whole on reload.

    :param name: ``allow`` or ``deny`` (logs and metrics).
    :param inline: ids written in the config.
    :param path: a file of ids, or None.
    :param normalize: how ids are compared (stripped, maybe case-folded).
    """

    def __init__(
        self,
        name: str,
        inline: list[str],
        path: Path | None,
        normalize: Callable[[str], str],
    ) -> None:
        self.name = name
        self.path = path
        self._normalize = normalize
        self._inline = frozenset(normalize(i) for i in inline if i.strip())
        self.ids: frozenset[str] = self._inline
        self._signature: tuple[int, int, int] | None = None
        self.configured = bool(inline) or path is not None
        self.last_error: str | None = None

    def __contains__(self, device_id: str) -> bool:
        return device_id in self.ids

    def __bool__(self) -> bool:
        return self.configured

    def load(self) -> None:
        """Read the file now; raises ``OSError`` or ``ValueError`` and keeps the old ids."""
        if self.path is None:
            return
        signature = _file_signature(self.path)
        ids = set(self._inline)
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                text = line.partition("#")[0].strip()
                if not text:
                    continue
                if len(text) > MAX_ID_LENGTH:
                    raise ValueError(f"line {number}: a device id is longer than {MAX_ID_LENGTH}")
                ids.add(self._normalize(text))
        self.ids = frozenset(ids)
        self._signature = signature

    def reload_if_changed(self) -> bool:
        """Re-read the file when its inode, size or mtime changed; True when reloaded."""
        if self.path is None or _file_signature(self.path) == self._signature:
            return False
        self.load()
        return True


def _normalizer(ignore_case: bool) -> Callable[[str], str]:
    if ignore_case:
        return lambda text: text.strip().casefold()
    return str.strip


_DENIALS = ACCESS_DENIALS.labels(RULE, Reason.DEVICE_NOT_ALLOWED.value)


def _deny(detail: str, *, policy: str | None = None) -> ProxyError:
    _DENIALS.inc()
    metadata = {"policy": policy} if policy else None
    return ProxyError(Reason.DEVICE_NOT_ALLOWED, detail, metadata=metadata)


class DeviceRule:
    """Allows or refuses requests by device id."""

    order = 20
    """Within the ``tryfirst`` tier of ``proxy_authorize``: after the address check (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.settings = DeviceSettings()
        self.active = False
        self.normalize = _normalizer(False)
        self.allow = DeviceList("allow", [], None, self.normalize)
        self.deny = DeviceList("deny", [], None, self.normalize)

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.device]`` and load its list files."""
        self.active = config.get("access.device") is not None
        # Never idle: proxy_authorize_policy must see every elected policy, those an
        # in-house proxy_select_policy builds included, and reads the validated model
        # (require_device_id = 1, "yes" or "true" all mean true). The raw config can't
        # tell which policies will ask; proxy_authorize returns at once without a section.
        self.enabled = True
        settings = config.section("access.device", DeviceSettings)
        if settings is None:
            return
        self.settings = settings
        self.normalize = _normalizer(settings.ignore_case)
        lists = []
        for name, inline, path in (
            ("allow", settings.allow, settings.allow_file),
            ("deny", settings.deny, settings.deny_file),
        ):
            full = path
            device_list = DeviceList(name, inline, full, self.normalize)
            try:
                device_list.load()
            except OSError as exc:
                config.error(f"access.device.{name}_file", f"cannot read {full}: {exc.strerror}")
            except (ValueError, UnicodeDecodeError) as exc:
                config.error(f"access.device.{name}_file", f"{full}: {exc}")
            lists.append(device_list)
        self.allow, self.deny = lists
        if settings.header:
            config.read_request_header(settings.header)
        if self.allow.path is not None or self.deny.path is not None:
            config.add_cleanup_ctx(self._watch)

    # -- list files ------------------------------------------------------------------

    async def _watch(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._poll(), name="access_device reload")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            await self.reload()

    async def reload(self) -> None:
        """Re-read every list file that changed (off the event loop); keep a list that fails."""
        for device_list in (self.allow, self.deny):
            if device_list.path is None:
                continue
            try:
                changed = await asyncio.to_thread(device_list.reload_if_changed)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                message = f"{device_list.path}: {exc}"
                if message != device_list.last_error:
                    log.error(
                        "device %s list not reloaded, keeping the old one: %s",
                        device_list.name,
                        message,
                    )
                    LIST_RELOADS.labels(f"device_{device_list.name}", "error").inc()
                device_list.last_error = message
                continue
            device_list.last_error = None
            if changed:
                LIST_RELOADS.labels(f"device_{device_list.name}", "ok").inc()
                log.info("device %s list reloaded: %d ids", device_list.name, len(device_list.ids))

    # -- requests --------------------------------------------------------------------

    def _reported(self, ctx: RequestContext, principal: Principal) -> list[str]:
        reported: list[Any] = []
        if self.settings.claim:
            value = principal.claims.get(self.settings.claim)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise _deny(f"the token's {self.settings.claim} claim is unreadable")
                reported.append(str(value))
        if ctx.request.client.device_id:
            reported.append(ctx.request.client.device_id)
        if self.settings.header:
            value = ctx.request.headers.get(self.settings.header)
            if value:
                reported.append(value)
        ids = []
        for item in reported:
            if len(item) > MAX_ID_LENGTH:
                raise _deny("a device id is too long")
            normalized = self.normalize(item)
            if normalized:
                ids.append(normalized)
        return ids

    def device_id(self, ctx: RequestContext, principal: Principal) -> str | None:
        """The request's device id, or None; refuses when its sources disagree."""
        ids = self._reported(ctx, principal)
        if len(set(ids)) > 1:
            raise _deny("the request names a device other than the token's")
        return ids[0] if ids else None

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Refuse devices on the deny list, off the allow list, or missing when required."""
        if not self.active:
            return  # no [access.device]: policies may still require a device id
        device_id = self.device_id(ctx, principal)
        ctx.extras[DEVICE_ID] = device_id
        if device_id is None:
            if self.settings.require or self.allow:
                raise _deny("the request names no device")
            return
        if device_id in self.deny:
            raise _deny("the device is on the deny list")
        if self.allow and device_id not in self.allow:
            raise _deny("the device is not on the allow list")
        ctx.note("device admitted")

    @hookimpl
    def proxy_authorize_policy(
        self, ctx: RequestContext, principal: Principal, policy: EffectivePolicy
    ) -> None:
        """Refuse a request without a device id when the elected policy requires one."""
        access = getattr(policy.policy, "access", None)
        if access is None or not access.require_device_id:
            return None
        if DEVICE_ID in ctx.extras:
            device_id = ctx.extras[DEVICE_ID]
        else:
            device_id = self.device_id(ctx, principal)
        if device_id is None:
            raise _deny(f"policy {policy.name!r} requires a device id", policy=policy.name)
        ctx.note(f"device id present, as policy {policy.name!r} requires")
        return None
