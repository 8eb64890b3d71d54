"""The CPython ceiling: a bare ``websockets`` server that relays each message, as received, to
every connection of the same path (its room). No storage, no authentication, no ordering or
delivery guarantee beyond TCP's; a slow client's frames queue without bound.

    python -m bench.baseline.bare --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = defaultdict(set)


async def relay(connection: ServerConnection) -> None:
    members = rooms[connection.request.path if connection.request else "/"]
    members.add(connection)
    try:
        async for message in connection:
            broadcast(members, message)
    finally:
        members.discard(connection)


async def main(port: int) -> None:
    async with serve(relay, "127.0.0.1", port, compression=None, max_queue=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bare websockets broadcast server")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
