"""An independent WebSocket peer for Tether's interop tests: Python `websockets` as an echo server.

Prints "listening on ws://127.0.0.1:PORT" once ready. With --no-compression it refuses
permessage-deflate. Runs until killed.
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    compression = None if "--no-compression" in sys.argv else "deflate"
    async with serve(echo, "127.0.0.1", 0, compression=compression, max_size=16 * 2**20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
