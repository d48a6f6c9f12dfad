"""The producer stays light, and imports flow one way: producer <- models <- worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "transformers",
    "peft",
    "sentence_transformers",
    "celery",
    "celery_batches",
    "kombu",
    "qdrant_client",
    "models",
    "worker",
)


def test_importing_producer_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, json, producer\n"
        "from producer import enqueue, Ticket, TriageResult, get_result\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert "producer" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def _top_level_imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


def test_imports_flow_one_way() -> None:
    producer = {
        (f, m)
        for f, m in _top_level_imports("producer")
        if m in {"models", "worker", "torch", "transformers", "celery"}
    }
    models = {(f, m) for f, m in _top_level_imports("models") if m in {"worker", "celery"}}
    assert producer == set()
    assert models == set()


def _loaded_after(modules: str) -> set[str]:
    """Top-level packages in `sys.modules` of a fresh interpreter after `import <modules>`."""
    code = (
        f"import sys, json, {modules}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_http_app_and_backfill_stay_light() -> None:
    loaded = _loaded_after("producer.http, producer.backfill")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    # `import producer` alone does not pull in the web stack.
    code = "import sys, producer; print('fastapi' in sys.modules)"
    plain = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert plain.stdout.strip() == "False"


def test_the_command_line_loads_heavy_parts_only_when_a_command_runs() -> None:
    # `triage status`, `triage enqueue`, `--help`: every command's module is imported up front.
    heavy = {"torch", "transformers", "fastapi", "qdrant_client"}
    loaded = _loaded_after("cli.main")
    assert loaded.isdisjoint(heavy), sorted(loaded & heavy)
