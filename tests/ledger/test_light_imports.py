"""The HTTP app imports the ledger's package for its types; SQLAlchemy loads only when used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    tops = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    program = f"import sys, json\n{code}\n{tops}"
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_importing_the_producer_or_the_ledgers_types_loads_no_database_code() -> None:
    loaded = _loaded_after(
        "import producer, producer.http, producer.ledger\n"
        "from producer.ledger import Counts, LedgerSettings, QueueEntry, Stats"
    )
    assert loaded.isdisjoint({"sqlalchemy", "alembic", "psycopg"})


def test_the_ledger_loads_them_when_used() -> None:
    assert "sqlalchemy" in _loaded_after("from producer.ledger import Ledger")
