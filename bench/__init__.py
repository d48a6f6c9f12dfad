"""Benchmarks of the service: `python -m bench all` runs every one and writes a Markdown summary.

    python -m bench all [--quick] [--out bench/RESULTS.md]
    python -m bench direct|e2e|naive|single|gpu|memory|webhook|backfill

Each bench prints its figures as a final JSON line (``{"bench": "e2e", "tickets_per_s": ...}``).
The Redis database given by ``--redis-url`` (default db 15) is FLUSHED before and after.
"""
