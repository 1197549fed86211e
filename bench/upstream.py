"""The Axinom emulator as a benchmark upstream, in its own process.

``python -m bench.upstream`` serves ``plugins.vendors.axinom``'s emulator for the
communication key in ``BENCH_COM_KEY_ID`` / ``BENCH_COM_KEY`` (base64) on an
ephemeral loopback port, prints ``upstream on URL`` and runs until SIGTERM.

The emulator keeps every request it receives for the tests to inspect; under
minutes of load that list would grow by gigabytes, so it is emptied every second
(what the emulator checks and answers is unchanged; a refusal is an answer
the load generator counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from plugins.vendors.axinom import emulator as axinom
from proxy.testing.emulator import start_emulator


async def main() -> None:
    """Serve until SIGTERM."""
    app = axinom.make_app(os.environ["BENCH_COM_KEY_ID"], os.environ["BENCH_COM_KEY"])
    running = await start_emulator(app)
    print(f"upstream on {running.url}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        running.state.received.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    await running.stop()


if __name__ == "__main__":
    asyncio.run(main())
