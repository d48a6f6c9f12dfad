"""`--wait --out`: wait for the backfilled tickets' results and write the input rows with them.

The input is read again chunk by chunk (memory stays flat), so this needs a file, not stdin.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from typing import IO, Any

from producer.backfill.reader import open_rows, valid_tickets
from producer.backfill.run import BackfillConfig
from producer.results import get_results
from producer.schemas import Ticket, TriageResult
from producer.settings import ProducerSettings

#: Added to each row; prefixed so they never overwrite an input column (a ``label`` of old).
RESULT_COLUMNS = ("triage_label", "triage_confidence", "triage_decided_by")


def write_results(
    stream: IO[bytes],
    out: IO[str],
    config: BackfillConfig,
    *,
    timeout_s: float,
    poll_s: float = 0.5,
    settings: ProducerSettings | None = None,
) -> tuple[int, int]:
    """Write each valid input row with its result columns (empty when none came within
    `timeout_s` overall); return (rows with a result, rows without)."""
    deadline = time.monotonic() + timeout_s
    writer: csv.DictWriter[str] | None = None
    found = missing = 0
    chunk: list[tuple[dict[str, Any], Ticket]] = []

    def flush() -> None:
        nonlocal writer, found, missing
        results = _wait(chunk, deadline, poll_s, settings)
        for data, ticket in chunk:
            res = results.get((ticket.source, ticket.task, ticket.id))
            cols = dict(
                zip(
                    RESULT_COLUMNS,
                    (res.label, round(res.confidence, 4), res.decided_by) if res else (None,) * 3,
                    strict=True,
                )
            )
            found, missing = (found + 1, missing) if res else (found, missing + 1)
            if config.fmt == "csv":
                if writer is None:
                    writer = csv.DictWriter(out, [*data, *RESULT_COLUMNS], extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({**data, **{k: "" if v is None else v for k, v in cols.items()}})
            else:
                out.write(json.dumps({**data, **cols}, default=str) + "\n")
        chunk.clear()

    rows = open_rows(stream, config.fmt)
    for data, ticket in valid_tickets(
        rows, mapping=config.mapping, source=config.source, grants=config.grants
    ):
        chunk.append((data, ticket))
        if len(chunk) >= config.chunk_size:
            flush()
    flush()
    return found, missing


def _wait(
    chunk: list[tuple[dict[str, Any], Ticket]],
    deadline: float,
    poll_s: float,
    settings: ProducerSettings | None,
) -> dict[tuple[str, str, str], TriageResult]:
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, t in chunk:
        wanted[(t.source, t.task)].add(t.id)
    got: dict[tuple[str, str, str], TriageResult] = {}
    while True:
        for (source, task), ids in wanted.items():
            pending = [i for i in ids if (source, task, i) not in got]
            for tid, res in get_results(pending, source, task, settings=settings).items():
                got[(source, task, tid)] = res
        if len(got) >= sum(len(ids) for ids in wanted.values()) or time.monotonic() >= deadline:
            return got
        time.sleep(poll_s)
