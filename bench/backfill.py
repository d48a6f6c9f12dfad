"""Benchmark: tickets/s and peak memory of a backfill of a generated JSONL file.

    python bench/backfill.py --lines 1000000 --redis-url redis://127.0.0.1:6379/15

Runs `triage backfill` as its own process (what an operator runs), samples its RSS, and prints
the figures as a final JSON line. The Redis database given is FLUSHED before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tickets.jsonl"
        with src.open("w") as fh:
            for i in range(args.lines):
                fh.write(json.dumps({"id": str(i), "subject": "Card", "body": f"ticket {i}"}))
                fh.write("\n")
        cmd = [sys.executable, "-m", "cli.main", "backfill", str(src)]
        cmd += ["--chunk-size", str(args.chunk_size)]
        # No consumer drains the queue here: lift the back-pressure cap, or the run would wait
        # for room once the queue holds TRIAGE_MAX_QUEUE_DEPTH messages.
        env = {**os.environ, "TRIAGE_REDIS_URL": args.redis_url, "TRIAGE_MAX_QUEUE_DEPTH": "0"}
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        child, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, child.memory_info().rss)
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    queued = r.llen("triage.classify")
    r.flushdb()
    if proc.returncode != 0 or queued != args.lines:
        sys.exit(f"backfill failed: exit {proc.returncode}, {queued} of {args.lines} queued")
    figures = {
        "bench": "backfill",
        "lines": args.lines,
        "tickets_per_s": round(args.lines / elapsed, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "elapsed_s": round(elapsed, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
