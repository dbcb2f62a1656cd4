#!/usr/bin/env python3
"""Benchmark of the Python ready-signal client (clients/python).

Why it exists: issue targets for Python agents are a ``mark_agent_ready``
round trip under 1 ms (median, loopback) and a heartbeat that costs one agent
under 0.1% of a core. This starts its own redis-server on a free loopback
port, then measures:

1. ``mark_agent_ready(name, meta)`` wall time per call, unchanged state (the
   common case: the script only refreshes the TTL) and changing state (the
   value is rewritten and published);
2. the CPU time of a process that does nothing but keep one agent ready
   (heartbeat every TTL/2) for ``--seconds`` (default 60), as a share of one core.

    target/python/bin/python benches/python_signal.py [--calls 5000] [--seconds 60] [--ttl 30]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import muster_signal
import redis as redis_py
from muster_signal import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, work: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise SystemExit("redis-server did not start")


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


def round_trips(calls: int) -> None:
    meta = {"port": 8000, "health_port": 8001, "startup_time": 12.5}
    for _ in range(200):  # warm up: connection, script cache
        muster_signal.mark_agent_ready("bench-agent", meta)
    for label, changing in (("unchanged", False), ("changing", True)):
        samples = []
        for i in range(calls):
            m = {**meta, "n": i} if changing else meta
            t0 = time.perf_counter_ns()
            ok = muster_signal.mark_agent_ready("bench-agent", m)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
            assert ok
        print(
            f"mark_agent_ready ({label} state): median {statistics.median(samples):.3f} ms, "
            f"p99 {pct(samples, 0.99):.3f} ms, max {max(samples):.3f} ms over {calls} calls"
        )


def heartbeat_child(url: str, seconds: float, ttl: float) -> None:
    c = Client("hb-agent", redis_url=url, ttl=ttl)
    c.ready({"port": 8000})
    start_cpu = time.process_time()
    start = time.monotonic()
    time.sleep(seconds)
    cpu = time.process_time() - start_cpu
    wall = time.monotonic() - start
    beats = int(wall / c._core.period)
    assert c.read().is_ready
    print(
        f"heartbeat, one agent, TTL {ttl:g} s ({beats} beats in {wall:.1f} s): "
        f"{cpu * 1000:.2f} ms CPU = {100 * cpu / wall:.4f}% of one core"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ttl", type=float, default=30.0, help="heartbeat every TTL/2")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        heartbeat_child(args.child, args.seconds, args.ttl)
        return
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found: run scripts/setup.sh")
    work = tempfile.mkdtemp(prefix="muster-bench-")
    port = free_port()
    server = start_redis(port, work)
    url = f"redis://127.0.0.1:{port}"
    try:
        os.environ["MUSTER_REDIS_URL"] = url
        print(f"python {sys.version.split()[0]}, redis-py {redis_py.__version__}")
        round_trips(args.calls)
        # The heartbeat in a process of its own, so nothing else counts toward its CPU.
        subprocess.run(
            [sys.executable, __file__, "--child", url, "--seconds", str(args.seconds),
             "--ttl", str(args.ttl)],
            check=True,
        )  # fmt: skip
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(f"bench process peak RSS {ru.ru_maxrss / 1024:.1f} MiB")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
