"""A TCP proxy on 127.0.0.1 that adds a network round trip to every exchange (half each way).

Loopback has no latency, so a loopback S3 server measures CPU, not the waiting that dominates
uploads of many small files to a real region.  This proxy holds every chunk, in each direction,
for RTT/2 before passing it on (order kept, bandwidth not limited), like ``tc netem delay``
where that kernel module is missing.  A process of its own, so it takes no CPU from the clients.

    python bench/latency_proxy.py LISTEN_PORT TARGET_PORT RTT_MS
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

CHUNK = 256 * 1024


async def delayed_pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                       reset: Callable[[], None]) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it arrived.  The stream's end travels
    the same way: an end of file as an end of file, a reset as ``reset()`` (both sides reset, as a
    network passes an RST on), so neither peer waits for an answer that cannot come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def receive() -> None:
        while True:
            try:
                data: bytes | None = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = None
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    receiver = asyncio.create_task(receive())
    try:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if data is None:
                reset()
                return
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, RuntimeError):  # RuntimeError: writing after the transport closed
        reset()
    finally:
        receiver.cancel()


async def serve(listen_port: int, target_port: int, rtt_ms: float) -> None:
    delay = rtt_ms / 2000

    async def handle(client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.transport.abort()
            return

        def reset() -> None:
            for writer in (client_writer, server_writer):
                writer.transport.abort()

        await asyncio.gather(delayed_pipe(client_reader, server_writer, delay, reset),
                             delayed_pipe(server_reader, client_writer, delay, reset))
        for writer in (client_writer, server_writer):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
