"""A plugin for lifecycle tests: holds a request for the seconds its `x-hold` header asks."""

from __future__ import annotations

import asyncio

from proxy import hookimpl


class Hold:
    """Delays authorization by ``x-hold`` seconds, so a request is in flight on demand."""

    @hookimpl
    async def proxy_authorize(self, ctx, principal):
        """Sleep, then allow."""
        seconds = float(ctx.request.headers.get("x-hold", "0") or 0)
        if seconds:
            await asyncio.sleep(seconds)
