"""Backfill: stream a JSONL or CSV file of tickets into the classify queue, resumably.

    from producer.backfill import BackfillConfig, run_backfill
    stats = run_backfill(open("tickets.csv", "rb"), BackfillConfig(source="helpdesk"))

Rows of a ticket system (``github``, ``zendesk``, ``jira``), and rows with an ``origin``, are
rejected unless the config grants that system (``BackfillConfig(grants=...)``, ``--grant``).
Light like the rest of `producer`; the `triage backfill` command (`cli.backfill`) adds the
progress bar, the summary and the dry run.
"""

from producer.backfill.reader import Row, open_rows, row_to_ticket, valid_tickets
from producer.backfill.results import write_results
from producer.backfill.run import BackfillConfig, BackfillStats, run_backfill

__all__ = [
    "BackfillConfig",
    "BackfillStats",
    "Row",
    "open_rows",
    "row_to_ticket",
    "run_backfill",
    "valid_tickets",
    "write_results",
]
