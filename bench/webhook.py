"""Benchmark: requests/s and latency of signed `POST /v1/webhooks/generic` on one uvicorn worker.

    python bench/webhook.py --requests 20000 --concurrency 8

Starts `triage serve` (one worker) against a real Redis, drives it from another process with
a bare asyncio HTTP/1.1 client over keep-alive connections (every request a new, correctly signed
ticket), and prints the figures as a final JSON line. The concurrency is the number of requests
in flight: by Little's law, latency is about concurrency / rate. The Redis database given is
FLUSHED before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    port = _free_port()
    env = {
        **os.environ,
        "TRIAGE_REDIS_URL": args.redis_url,
        "TRIAGE_API_TOKENS": '["bench"]',
        "TRIAGE_WEBHOOK_SOURCES": '["generic"]',
        "TRIAGE_WEBHOOK_SECRETS": json.dumps({"generic": [SECRET]}),
    }
    cmd = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "-l", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        cpu_before = _cpu_s(server.pid)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            latencies, elapsed = pool.apply(_drive, (url, args.requests, args.concurrency))
        server_cpu = _cpu_s(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait()
    queued = r.llen("triage.classify")
    r.flushdb()
    latencies.sort()
    figures = {
        "bench": "webhook",
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "requests": len(latencies),
        # CPU the server spent per request: what bounds the rate on a core of its own.
        "server_cpu_us_per_request": round(server_cpu / len(latencies) * 1e6, 1),
        "enqueued": queued,
        "concurrency": args.concurrency,
    }
    print(json.dumps(figures))


def _drive(url: str, total: int, concurrency: int) -> tuple[list[float], float]:
    """The load generator, in its own process so it does not share the server's core."""
    return asyncio.run(_drive_async(url, total, concurrency))


async def _drive_async(url: str, total: int, concurrency: int) -> tuple[list[float], float]:
    # A bare HTTP/1.1 keep-alive client: httpx spends ~0.5 ms of CPU per request, which on two
    # cores would measure the load generator, not the server.
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    counter = iter(range(total))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                body = json.dumps({"id": f"b{i}", "body": f"bench ticket {i}"}).encode()
                stamp = int(time.time())
                sig = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
                request = (
                    f"POST /v1/webhooks/generic HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: application/json\r\n"
                    f"X-Triage-Signature: t={stamp},v1={sig.hexdigest()}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                payload = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 202"):
                    raise RuntimeError(f"{head.splitlines()[0]!r}: {payload!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit("the server did not start")


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
