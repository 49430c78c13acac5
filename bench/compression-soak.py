#!/usr/bin/env python3
"""Compression memory of a WebSocket echo server under browser-like clients (issue 17).

Drives `ws://HOST:PORT/echo` with Python `websockets` clients, which offer permessage-deflate by
default as browsers do, and reads the server's memory from /proc/PID/status:

  hold   N connections (default 2000). Each checks that permessage-deflate was negotiated, sends one
         JSON message and checks that its echo comes back byte-exact and compressed (RSV1); then
         all stay open. Reports server RSS before connecting, with all of them open, and per
         connection ((after - before) / N); then closes them all and reports RSS after.
  soak   N connections (default 2000), each sending a chat/feed-like JSON message (100-300 B,
         varied) once a second and checking that every echo comes back byte-exact and in order.
         Every second about 5 % of the connections close and are replaced, half with a Close
         frame and half abruptly (transport abort, no Close). Runs for --duration seconds (180).
         Reports RSS at 10/60/120/180 s, growth after the first minute, messages sent / echoed /
         lost / corrupted, and this load generator's own CPU use.

Normally started by bench/compression-soak.sh, which builds and starts the server, samples its
RSS every second into --rss-series and passes --server-pid. By hand:

  target/venv/bin/python3 bench/compression-soak.py soak ws://127.0.0.1:PORT/echo \
      --server-pid PID --connections 20 --duration 10

Exit status: 0 all good; 1 an echo lost, corrupted or out of order, a connection refused or
closed by the server, or (hold) compression not in use; 2 bad arguments; 3 the server died.
Everything is bounded: connection attempts, echoes, closes and the whole run have timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import resource
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Opcode

CONNECT_TIMEOUT = 10.0  # seconds for TCP + the opening handshake
ECHO_TIMEOUT = 10.0  # hold: seconds for the one echo
DRAIN_TIMEOUT = 5.0  # soak: seconds for a closing connection's echoes still in flight
CLOSE_TIMEOUT = 5.0  # seconds for the closing handshake
CONNECT_CONCURRENCY = 200  # opening handshakes in progress at once

WORDS = (
    "hello there anyone around for the standup today shipping the new release tonight please "
    "review my pull request when you can the build is green again lunch at noon sounds good "
    "who broke the staging database sorry that was me rolling back now meeting moved to three "
    "great work everyone the dashboard looks much faster can we talk about the roadmap later "
    "thanks for the fix deploy finished latency is down café naïve 🚀 👍"
).split()
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory")
ROOMS = ("general", "random", "dev", "ops", "design", "support")
SYMBOLS = ("BTC", "ETH", "AAPL", "MSFT", "TSLA", "EUR/USD", "GOLD")


class Stats:
    def __init__(self) -> None:
        self.connected = 0
        self.connect_failed = 0
        self.not_negotiated = 0  # permessage-deflate not in the handshake response
        self.sent = 0
        self.echoed = 0
        self.lost = 0
        self.corrupted = 0  # an echo that differs from what was sent next (includes reordering)
        self.out_of_order = 0  # ...of which matched a later message of the same connection
        self.unexpected_close = 0  # the server closed (or the connection broke) while we did not
        self.compressed_in = 0  # data frames received with RSV1 set
        self.plain_in = 0
        self.compressed_out = 0  # data frames sent with RSV1 set
        self.churned_clean = 0  # soak: replaced after a closing handshake
        self.churned_abort = 0  # soak: replaced after a transport abort (no Close frame)
        self.latencies: list[float] = []


def make_message(rng: random.Random, conn_id: int, seq: int) -> bytes:
    """One chat, feed or presence event as JSON, 100-300 bytes of UTF-8, different every time."""
    target = rng.randint(100, 300)
    kind = rng.random()
    ts = int(time.time() * 1000)
    if kind < 0.6:
        event = {
            "type": "chat",
            "room": rng.choice(ROOMS),
            "id": f"m-{conn_id}-{seq}",
            "user": {"id": rng.randint(1, 99999), "name": rng.choice(NAMES)},
            "ts": ts,
            "text": "",
        }
        key = "text"
    elif kind < 0.9:
        event = {
            "type": "feed",
            "channel": "prices",
            "seq": seq,
            "ts": ts,
            "items": [
                {"sym": rng.choice(SYMBOLS), "px": round(rng.uniform(1, 70000), 2), "chg": round(rng.uniform(-5, 5), 3)}
                for _ in range(rng.randint(1, 3))
            ],
            "note": "",
        }
        key = "note"
    else:
        event = {
            "type": "presence",
            "room": rng.choice(ROOMS),
            "user": rng.choice(NAMES),
            "state": rng.choice(("online", "away", "typing", "offline")),
            "ts": ts,
            "status": "",
        }
        key = "status"
    words: list[str] = []
    while True:
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        if len(data) >= target:
            break
        words.append(rng.choice(WORDS))
        event[key] = " ".join(words)
    while len(data) > 300 and words:
        words.pop()
        event[key] = " ".join(words)
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    return data


def count_compression(ws, stats: Stats) -> bool:
    """Counts compressed data frames both ways on this connection; False without permessage-deflate."""
    deflate = next((e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)), None)
    if deflate is None:
        return False
    decode, encode = deflate.decode, deflate.encode
    data_opcodes = (Opcode.TEXT, Opcode.BINARY)

    def counting_decode(frame, *, max_size=None):
        if frame.opcode in data_opcodes:
            if frame.rsv1:
                stats.compressed_in += 1
            else:
                stats.plain_in += 1
        return decode(frame, max_size=max_size)

    def counting_encode(frame):
        frame = encode(frame)
        if frame.opcode in data_opcodes and frame.rsv1:
            stats.compressed_out += 1
        return frame

    deflate.decode, deflate.encode = counting_decode, counting_encode
    return True


async def open_connection(url: str, stats: Stats, gate: asyncio.Semaphore):
    async with gate:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                ws = await connect(url, ping_interval=None, close_timeout=CLOSE_TIMEOUT, max_size=2**20)
        except Exception as exc:  # refused, timed out, rejected handshake
            stats.connect_failed += 1
            if stats.connect_failed <= 5:
                print(f"connect failed: {exc!r}", file=sys.stderr)
            return None
    stats.connected += 1
    if not count_compression(ws, stats):
        stats.not_negotiated += 1
    return ws


class Client:
    """A soak connection: sends once a second, checks the echoes in order, closes when told."""

    def __init__(self, conn_id: int, url: str, stats: Stats, gate: asyncio.Semaphore, seed: int) -> None:
        self.id = conn_id
        self.url = url
        self.stats = stats
        self.gate = gate
        self.rng = random.Random(seed)
        self.pending: collections.deque[tuple[bytes, float]] = collections.deque()
        self.drained = asyncio.Event()  # set while no echo is awaited
        self.drained.set()
        self.stop = asyncio.Event()
        self.abort = False  # close with a transport abort instead of a Close frame
        self.churn = False  # closed by the churn (counted), not at the end of the run
        self.closing = False
        self.open = False
        self.task = asyncio.create_task(self.life())

    async def life(self) -> None:
        ws = await open_connection(self.url, self.stats, self.gate)
        if ws is None:
            return
        self.open = True
        receiver = asyncio.create_task(self.receive(ws))
        loop = asyncio.get_running_loop()
        next_send = loop.time() + self.rng.random()  # spread the sends over the second
        seq = 0
        try:
            while not self.stop.is_set() and not receiver.done():
                delay = next_send - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self.stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                data = make_message(self.rng, self.id, seq)
                seq += 1
                self.pending.append((data, time.monotonic()))
                self.drained.clear()
                await ws.send(data, text=True)
                self.stats.sent += 1
                next_send = max(next_send + 1.0, loop.time())  # no catch-up burst after a stall
        except ConnectionClosed:
            pass  # counted by the receiver
        self.open = False
        if not receiver.done():
            try:
                await asyncio.wait_for(self.drained.wait(), DRAIN_TIMEOUT)
            except TimeoutError:
                pass
        self.closing = True
        if self.abort:
            ws.transport.abort()
        else:
            try:
                await ws.close()
            except Exception:
                pass
        if self.churn:
            if self.abort:
                self.stats.churned_abort += 1
            else:
                self.stats.churned_clean += 1
        receiver.cancel()
        try:
            await receiver
        except (asyncio.CancelledError, Exception):
            pass
        self.stats.lost += len(self.pending)
        self.pending.clear()

    async def receive(self, ws) -> None:
        stats = self.stats
        try:
            while True:
                data = await ws.recv(decode=False)
                now = time.monotonic()
                if self.pending and self.pending[0][0] == data:
                    _, sent_at = self.pending.popleft()
                    stats.echoed += 1
                    stats.latencies.append(now - sent_at)
                else:
                    stats.corrupted += 1
                    later = next((i for i, (d, _) in enumerate(self.pending) if d == data), None)
                    if later is not None:
                        stats.out_of_order += 1
                        for _ in range(later + 1):
                            self.pending.popleft()
                if not self.pending:
                    self.drained.set()
        except ConnectionClosed:
            if not self.closing:
                stats.unexpected_close += 1
        finally:
            self.drained.set()


# Server process: memory, CPU, liveness.


def proc_status(pid: int, key: str) -> list[str] | None:
    """The words after `key:` in /proc/PID/status; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split()[1:]
    except OSError:
        pass
    return None


def server_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    state = proc_status(pid, "State")
    return state is not None and state[0] != "Z"


def server_rss(pid: int | None) -> int | None:
    rss = None if pid is None else proc_status(pid, "VmRSS")
    return None if rss is None else int(rss[0]) * 1024


def server_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def read_series(path: str | None, t0: float) -> list[tuple[float, int]]:
    """The sampler's `EPOCH_SECONDS RSS_BYTES` lines, as (seconds since t0, bytes)."""
    series = []
    if not path:
        return series
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    series.append((float(parts[0]) - t0, int(parts[1])))
    except OSError:
        pass
    return series


def at(series: list[tuple[float, int]], t: float) -> int | None:
    """The last sample taken at or before t seconds (at most 2 s before)."""
    before = [s for s in series if t - 2.0 <= s[0] <= t]
    return before[-1][1] if before else None


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


class LoadCpu:
    """This process's own CPU time (user + system) over wall time, 100 % = one core."""

    def __init__(self) -> None:
        self.t0 = os.times()

    def report(self) -> dict:
        t1 = os.times()
        user, system = t1.user - self.t0.user, t1.system - self.t0.system
        wall = t1.elapsed - self.t0.elapsed
        return {
            "cpu_user_s": round(user, 2),
            "cpu_system_s": round(system, 2),
            "wall_s": round(wall, 2),
            "cpu_percent_of_one_core": round(100 * (user + system) / wall, 1) if wall > 0 else None,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        print(f"warning: fd limit {soft} is below the {want} this run needs", file=sys.stderr)


# The two modes. Each returns (summary dict, failed, server died).


async def hold(args) -> tuple[dict, bool, bool]:
    stats = Stats()
    pid = args.server_pid
    await asyncio.sleep(1.0)
    rss_before = server_rss(pid)
    cpu = LoadCpu()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    rng = random.Random(args.seed)

    async def one(i: int):
        ws = await open_connection(args.url, stats, gate)
        if ws is None:
            return None
        data = make_message(rng, i, 0)
        try:
            async with asyncio.timeout(ECHO_TIMEOUT):
                await ws.send(data, text=True)
                stats.sent += 1
                echo = await ws.recv(decode=False)
        except (TimeoutError, ConnectionClosed):
            stats.lost += 1
            return ws
        if echo == data:
            stats.echoed += 1
        else:
            stats.corrupted += 1
        return ws

    t_start = time.monotonic()
    conns = [ws for ws in await asyncio.gather(*(one(i) for i in range(args.connections))) if ws is not None]
    t_open = time.monotonic() - t_start
    print(f"{len(conns)} connections open in {t_open:.1f} s; holding {args.hold} s", flush=True)
    await asyncio.sleep(args.hold)
    alive = server_alive(pid)
    rss_after = server_rss(pid)
    still_open = sum(1 for ws in conns if ws.protocol.state.name == "OPEN")
    load_cpu = cpu.report()

    async def close(ws):
        try:
            await ws.close()
        except Exception:
            pass

    await asyncio.gather(*(close(ws) for ws in conns))
    await asyncio.sleep(args.settle)
    rss_closed = server_rss(pid)
    alive = alive and server_alive(pid)

    per_conn = None
    if rss_before is not None and rss_after is not None and conns:
        per_conn = (rss_after - rss_before) / len(conns)
    summary = {
        "mode": "hold",
        "connections": args.connections,
        "connected": stats.connected,
        "connect_failed": stats.connect_failed,
        "deflate_negotiated": stats.connected - stats.not_negotiated,
        "echoes_compressed": stats.compressed_in,
        "echoes_plain": stats.plain_in,
        "sent_compressed": stats.compressed_out,
        "echoed": stats.echoed,
        "lost": stats.lost,
        "corrupted": stats.corrupted,
        "still_open_after_hold": still_open,
        "open_seconds": round(t_open, 1),
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_per_connection_bytes": None if per_conn is None else round(per_conn),
        "rss_after_close_bytes": rss_closed,
        "load_generator": load_cpu,
    }
    print()
    print(f"server RSS before connecting:   {mib(rss_before)}")
    print(f"server RSS with {len(conns)} open:     {mib(rss_after)}")
    if per_conn is not None:
        print(f"server RSS per connection:      {per_conn / 1024:.1f} KiB  ((after - before) / {len(conns)})")
    print(f"server RSS {args.settle:g} s after closing: {mib(rss_closed)}")
    print(
        f"connected {stats.connected}/{args.connections}, deflate negotiated on "
        f"{stats.connected - stats.not_negotiated}, echoes {stats.echoed} ok "
        f"({stats.compressed_in} compressed, {stats.plain_in} plain on deflate connections), lost {stats.lost}, "
        f"corrupted {stats.corrupted}, still open after the hold {still_open}"
    )
    print(f"load generator CPU: {load_cpu['cpu_percent_of_one_core']}% of one core over {load_cpu['wall_s']} s")
    failed = (
        stats.connect_failed
        or stats.not_negotiated
        or stats.lost
        or stats.corrupted
        or stats.compressed_in < stats.echoed
        or still_open < len(conns)
    )
    if args.no_compression_expected:
        failed = stats.connect_failed or stats.lost or stats.corrupted or still_open < len(conns)
    return summary, bool(failed), not alive


async def soak(args) -> tuple[dict, bool, bool]:
    stats = Stats()
    pid = args.server_pid
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0)
    rss_rest = server_rss(pid)
    cpu = LoadCpu()
    server_cpu0 = server_cpu_seconds(pid)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    master = random.Random(args.seed)
    next_id = 0
    clients: set[Client] = set()

    def spawn() -> Client:
        nonlocal next_id
        c = Client(next_id, args.url, stats, gate, master.getrandbits(64))
        next_id += 1
        clients.add(c)
        c.task.add_done_callback(lambda _: clients.discard(c))
        return c

    t0_epoch = time.time()
    t0 = loop.time()
    for _ in range(args.connections):
        spawn()
    churn_each = round(args.connections * args.churn)
    churned = 0
    abrupt_next = False
    died = False
    for tick in range(1, int(args.duration) + 1):
        await asyncio.sleep(max(0.0, t0 + tick - loop.time()))
        if not server_alive(pid):
            died = True
            print(f"t={tick}s: the server died", flush=True)
            break
        candidates = [c for c in clients if c.open and not c.stop.is_set()]
        for c in master.sample(candidates, min(churn_each, len(candidates))):
            c.abort = abrupt_next
            c.churn = True
            abrupt_next = not abrupt_next
            c.stop.set()
            churned += 1
            spawn()
        if tick % 10 == 0 or tick == int(args.duration):
            in_flight = sum(len(c.pending) for c in clients)
            print(
                f"t={tick:4d}s  rss {mib(server_rss(pid)):>11}  open {sum(1 for c in clients if c.open):5d}  "
                f"sent {stats.sent:8d}  echoed {stats.echoed:8d}  in flight {in_flight:4d}  lost {stats.lost}  "
                f"corrupted {stats.corrupted}  server closes {stats.unexpected_close}  "
                f"connect failures {stats.connect_failed}  churned {churned}",
                flush=True,
            )
    t_end = loop.time() - t0
    for c in list(clients):
        c.stop.set()
    remaining = [c.task for c in clients]
    if remaining:
        _, stuck = await asyncio.wait(remaining, timeout=DRAIN_TIMEOUT + CLOSE_TIMEOUT + 5)
        for task in stuck:
            task.cancel()
        if stuck:
            print(f"{len(stuck)} connections did not finish closing in time", file=sys.stderr)
    load_cpu = cpu.report()
    server_cpu1 = server_cpu_seconds(pid)
    await asyncio.sleep(args.settle)
    rss_closed = server_rss(pid)
    died = died or not server_alive(pid)

    series = read_series(args.rss_series, t0_epoch)
    marks = {t: at(series, t) for t in (10, 60, 120, 180) if t <= args.duration + 0.5}
    growth = None
    if marks.get(60) and series:
        last = at(series, min(args.duration, 180))
        if last:
            growth = round(100 * (last - marks[60]) / marks[60], 1)
    if args.series_out and series:
        with open(args.series_out, "w") as f:
            f.write("seconds\trss_bytes\n")
            for t, rss in series:
                f.write(f"{t:.1f}\t{rss}\n")
    lat = sorted(stats.latencies)

    def pct(p: float):
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

    server_cpu = None
    if server_cpu0 is not None and server_cpu1 is not None and load_cpu["wall_s"]:
        server_cpu = round(100 * (server_cpu1 - server_cpu0) / load_cpu["wall_s"], 1)
    summary = {
        "mode": "soak",
        "connections": args.connections,
        "duration_s": round(t_end, 1),
        "churn_per_second": churn_each,
        "connections_opened": stats.connected,
        "connect_failed": stats.connect_failed,
        "deflate_negotiated": stats.connected - stats.not_negotiated,
        "churned_clean": stats.churned_clean,
        "churned_abrupt": stats.churned_abort,
        "sent": stats.sent,
        "echoed": stats.echoed,
        "lost": stats.lost,
        "corrupted": stats.corrupted,
        "out_of_order": stats.out_of_order,
        "server_closes": stats.unexpected_close,
        "echoes_compressed": stats.compressed_in,
        "echoes_plain": stats.plain_in,
        "echo_latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "rss_at_rest_bytes": rss_rest,
        "rss_bytes_at": {str(t): v for t, v in marks.items()},
        "rss_max_bytes": max((r for _, r in series), default=None),
        "growth_after_first_minute_percent": growth,
        "rss_after_close_bytes": rss_closed,
        "server_cpu_percent_of_one_core": server_cpu,
        "load_generator": load_cpu,
    }
    print()
    print(f"server RSS at rest: {mib(rss_rest)}")
    if marks:
        print("server RSS at " + ", ".join(f"{t} s: {mib(v)}" for t, v in marks.items()))
    print(f"server RSS max: {mib(summary['rss_max_bytes'])}; {args.settle:g} s after closing everything: {mib(rss_closed)}")
    if growth is not None:
        print(f"growth from 60 s to {min(int(args.duration), 180)} s: {growth:+.1f} %")
    print(
        f"messages sent {stats.sent}, echoed {stats.echoed}, lost {stats.lost}, corrupted {stats.corrupted} "
        f"(out of order {stats.out_of_order}); echoes compressed {stats.compressed_in}, plain {stats.plain_in} (on deflate connections)"
    )
    print(
        f"connections opened {stats.connected} (deflate on {stats.connected - stats.not_negotiated}), "
        f"failed {stats.connect_failed}; replaced {stats.churned_clean} after a Close, "
        f"{stats.churned_abort} after an abort; closed by the server {stats.unexpected_close}"
    )
    print(f"echo latency p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {pct(1.0)} ms")
    print(
        f"CPU: load generator {load_cpu['cpu_percent_of_one_core']}% of one core "
        f"(user {load_cpu['cpu_user_s']} s, system {load_cpu['cpu_system_s']} s over {load_cpu['wall_s']} s), "
        f"server {'n/a' if server_cpu is None else f'{server_cpu}%'} of one core"
    )
    failed = stats.lost or stats.corrupted or stats.unexpected_close or stats.connect_failed
    if not args.no_compression_expected:
        failed = failed or stats.not_negotiated
    return summary, bool(failed), died


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("hold", "soak"))
    parser.add_argument("url", help="the echo endpoint, e.g. ws://127.0.0.1:8787/echo")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=180.0, help="soak: seconds of load (default 180)")
    parser.add_argument("--churn", type=float, default=0.05, help="soak: share of connections replaced each second")
    parser.add_argument("--hold", type=float, default=5.0, help="hold: seconds all connections stay open before RSS is read")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after closing everything before the last RSS")
    parser.add_argument("--server-pid", type=int, help="the server's process id (RSS, CPU, liveness)")
    parser.add_argument("--rss-series", help="soak: file of `EPOCH_SECONDS RSS_BYTES` lines sampled every second")
    parser.add_argument("--series-out", help="soak: write the series, in seconds since the start, here")
    parser.add_argument("--json-out", help="write the summary as JSON here")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--no-compression-expected",
        action="store_true",
        help="the server was started with --no-compression: do not fail on uncompressed echoes",
    )
    args = parser.parse_args()
    if not (1 <= args.connections <= 10000 and 1 <= args.duration <= 3600 and 0 <= args.churn <= 0.5):
        parser.error("--connections 1..10000, --duration 1..3600, --churn 0..0.5")
    if not args.url.startswith("ws://127.") and not args.url.startswith("ws://localhost"):
        parser.error("loopback only: the URL must be ws://127.x.x.x:PORT/... or ws://localhost:PORT/...")
    raise_fd_limit(2 * args.connections + 256)

    run = hold if args.mode == "hold" else soak
    deadline = (args.duration if args.mode == "soak" else args.hold) + args.settle + 180

    async def bounded():
        async with asyncio.timeout(deadline):
            return await run(args)

    try:
        summary, failed, died = asyncio.run(bounded())
    except TimeoutError:
        print(f"compression-soak: the run did not finish within {deadline:.0f} s", file=sys.stderr)
        return 1
    print("RESULT " + json.dumps(summary))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=2)
    if died:
        print("compression-soak: FAILED: the server died", file=sys.stderr)
        return 3
    if failed:
        print("compression-soak: FAILED (see the counts above)", file=sys.stderr)
        return 1
    print("compression-soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
