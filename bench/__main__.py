"""`python -m bench all|NAME`: run the benchmarks, print each one's figures as a JSON line.

`all` also writes the Markdown summary (`--out`, default bench/RESULTS.md): every figure, its
target, the ratio to the target and the machine it ran on. `direct` and `e2e` print a line per
variant (``"variant": "fp32"``, then ``"default"``: the CPU inference the settings default to);
the summary keys the fp32 ones ``direct:fp32`` and ``e2e:fp32``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Options

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the worker runs (worker.resources)

log = logging.getLogger("bench")

BENCHES = ("direct", "e2e", "naive", "single", "memory", "gpu", "webhook", "backfill")
#: `--quick`: small sizes, a few minutes on 2 cores.
QUICK = {
    "tickets": 300,
    "repeat": 1,
    "single_samples": 20,
    "memory_tickets": 6500,  # two passes over the test tickets: the index full, then flat
    "webhook_requests": 3000,
    "backfill_lines": 100_000,
}
EXAMPLES = """examples:
  python -m bench all                     every bench, summary in bench/RESULTS.md (~12 min)
  python -m bench all --quick --out /tmp/bench.md
  python -m bench e2e --tickets 500 --adapter .triage/b77/adapter
  python -m bench gpu                     8B-shaped Llama on CUDA, a tiny one on the CPU
"""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    opts = _options(args)
    names = BENCHES if args.name == "all" else (args.name,)
    from bench.summary import machine_info, markdown

    machine = machine_info(" ".join(sys.argv[1:] if argv is None else argv))
    figures: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            found = _runners()[name](opts)
        except (Exception, SystemExit) as exc:
            if args.name != "all":
                raise
            log.error("bench %s failed: %s", name, exc)
            continue
        for line in found if isinstance(found, list) else [found]:
            figures[figure_key(name, line)] = line
            print(json.dumps(line), flush=True)
    if args.name == "all":
        machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(figures, machine), encoding="utf-8")
        print(f"summary written to {args.out}", file=sys.stderr)
    return 0 if set(names) <= {key.split(":")[0] for key in figures} else 1


def figure_key(name: str, figures: dict[str, Any]) -> str:
    """``direct`` for the default variant (what the other targets compare against),
    ``direct:fp32`` for fp32."""
    variant = figures.get("variant", "default")
    return name if variant == "default" else f"{name}:{variant}"


def _runners() -> dict[str, Callable[[Options], dict[str, Any] | list[dict[str, Any]]]]:
    from bench import direct, gpu, memory, queued

    return {
        "direct": direct.run,
        "e2e": queued.run_e2e,
        "naive": queued.run_naive,
        "single": queued.run_single,
        "memory": memory.run,
        "gpu": gpu.run,
        "webhook": lambda o: _script(
            "webhook", "--requests", str(o.webhook_requests), "--redis-url", o.redis_url
        ),
        "backfill": lambda o: _script(
            "backfill", "--lines", str(o.backfill_lines), "--redis-url", o.redis_url
        ),
    }


def _script(name: str, *args: str) -> dict[str, Any]:
    """Run a standalone bench script (bench/NAME.py) and read its final JSON line."""
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args]
    # Nothing consumes the bench queue: the producers' depth cap would stop a 1M-line backfill.
    env = {**os.environ, "TRIAGE_MAX_QUEUE_DEPTH": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench/{name}.py exited with {proc.returncode}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def _options(args: argparse.Namespace) -> Options:
    given = {f.name: getattr(args, f.name) for f in fields(Options) if hasattr(args, f.name)}
    chosen = {**(QUICK if args.quick else {}), **{k: v for k, v in given.items() if v is not None}}
    return Options(**chosen)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=("all", *BENCHES), help="one bench, or all of them")
    p.add_argument("--quick", action="store_true", help="small sizes: " + json.dumps(QUICK))
    p.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"), help="summary (all)")
    p.add_argument("--tickets", type=int, help="Banking77 test tickets (default: all 3,080)")
    p.add_argument("--adapter", type=Path, help="adapter dir (default: .triage/b77/adapter...)")
    p.add_argument("--redis-url", help=f"FLUSHED before and after (default {Options.redis_url})")
    p.add_argument("--work-dir", type=Path, help=f"cache and logs (default {Options.work_dir})")
    p.add_argument("--train-examples", type=int, help="for the adapter trained when none exists")
    p.add_argument("--repeat", type=int, help="runs of direct, e2e, naive; median kept (3)")
    p.add_argument("--single-samples", type=int, help="single tickets timed (default 50)")
    p.add_argument("--memory-tickets", type=int, help="tickets the memory worker takes (50,000)")
    p.add_argument("--gpu-config", choices=("auto", "8b", "tiny"), help="model of the gpu bench")
    p.add_argument("--webhook-requests", type=int, help="requests of bench/webhook.py (20,000)")
    p.add_argument("--backfill-lines", type=int, help="lines of bench/backfill.py (1,000,000)")
    return p


if __name__ == "__main__":
    sys.exit(main())
