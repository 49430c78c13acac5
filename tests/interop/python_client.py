"""An independent WebSocket peer for Tether's interop tests: Python `websockets` as a client of a
Tether echo endpoint. Usage: python_client.py URL [--no-compression]

Sends text and binary messages of several sizes, checks each echo, checks whether compression was
negotiated as asked, closes cleanly, and prints "ok" (exit 0) or the failure (exit 1).
"""
import asyncio
import sys

from websockets.asyncio.client import connect


async def main(url, compression):
    async with connect(url, compression=compression, max_size=16 * 2**20) as ws:
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        assert bool(extensions) == (compression is not None), extensions
        for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            text = ("tether " * (size // 7 + 1))[:size]
            await ws.send(text)
            assert await ws.recv() == text, f"text of {size} bytes"
            data = bytes(i % 251 for i in range(size))
            await ws.send(data)
            assert await ws.recv() == data, f"binary of {size} bytes"
        await ws.close()
        assert ws.close_code == 1000, ws.close_code
    print("ok")


compression = None if "--no-compression" in sys.argv else "deflate"
asyncio.run(main(sys.argv[1], compression))
