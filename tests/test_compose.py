"""docker-compose.yml stays true to the code: no Docker engine runs here, so check what we can."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from models.settings import ModelSettings
from producer.http.settings import HttpSettings
from producer.settings import ProducerSettings
from worker.cli import main
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = (ProducerSettings, HttpSettings, ModelSettings, WorkerSettings)


def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {name: svc for name, svc in compose["services"].items() if "triage" in str(svc)}


def test_every_triage_variable_is_a_real_setting() -> None:
    known = {f"TRIAGE_{name.upper()}" for cls in SETTINGS for name in cls.model_fields}
    used = {
        var
        for svc in services().values()
        for var in svc.get("environment", {})
        if var.startswith("TRIAGE_")
    }
    assert used, "the compose file sets no TRIAGE_ variable: did its layout change?"
    assert used <= known, sorted(used - known)


def test_every_service_command_is_a_cli_command() -> None:
    for name, svc in services().items():
        command = svc["command"]
        args = command if isinstance(command, list) else shlex.split(command)
        out = CliRunner().invoke(main, [*args, "--help"])
        assert out.exit_code == 0, f"{name}: triage {' '.join(args)}: {out.output}"


def test_redis_keeps_what_it_accepted() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis_cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd
