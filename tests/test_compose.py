"""docker-compose.yml stays true to the code: no Docker engine runs here, so check what we can."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from cli.main import main
from models.settings import ModelSettings
from producer.http.settings import HttpSettings
from producer.ledger import LedgerSettings
from producer.settings import ProducerSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = (ProducerSettings, HttpSettings, LedgerSettings, ModelSettings, WorkerSettings)
#: Secrets without which the stack must not start: compose refuses when they are unset.
REQUIRED_SECRETS = {
    "TRIAGE_CALLBACK_SECRET",
    "TRIAGE_API_TOKENS",
    "TRIAGE_WEBHOOK_SECRETS",
    "FLOWER_BASIC_AUTH",
    "POSTGRES_PASSWORD",
}
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|BASIC_AUTH")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def services() -> dict[str, Any]:
    """The services that run our image (its commands are `triage` subcommands)."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if str(svc.get("image", "")).startswith("ticket-triage:")
    }


def one_shot(svc: dict[str, Any]) -> bool:
    """A service that runs once and exits (no restart, no health check): others await its
    successful end, not its health."""
    return svc.get("restart") == "no" and svc.get("healthcheck") == {"disable": True}


def environments() -> list[tuple[str, str, str]]:
    """(service, variable, value as written) for every service."""
    return [
        (name, var, str(value))
        for name, svc in compose()["services"].items()
        for var, value in (svc.get("environment") or {}).items()
    ]


def test_the_stack_has_every_role() -> None:
    roles = {"redis", "qdrant", "postgres", "migrate", "api", "classify", "classify-cpu"}
    assert roles | {"escalate", "writeback"} <= set(compose()["services"])
    assert compose()["services"]["flower"]["image"].startswith("mher/flower")
    gpu = compose()["services"]["classify"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu[0]["capabilities"] == ["gpu"]
    assert "deploy" not in compose()["services"]["classify-cpu"]


def test_every_triage_variable_is_a_real_setting() -> None:
    known = {f"TRIAGE_{name.upper()}" for cls in SETTINGS for name in cls.model_fields}
    used = {var for _, var, _ in environments() if var.startswith("TRIAGE_")}
    assert used, "the compose file sets no TRIAGE_ variable: did its layout change?"
    assert used <= known, sorted(used - known)


def test_every_service_command_is_a_cli_command() -> None:
    assert {"api", "classify", "escalate", "writeback"} <= set(services())
    for name, svc in services().items():
        command = svc["command"]
        args = command if isinstance(command, list) else shlex.split(command)
        out = CliRunner().invoke(main, [*args, "--help"])
        assert out.exit_code == 0, f"{name}: triage {' '.join(args)}: {out.output}"


def test_required_secrets_stop_compose_when_unset_and_none_is_written_in() -> None:
    env = environments()
    for secret in REQUIRED_SECRETS:
        values = [value for _, var, value in env if var == secret]
        assert values, f"{secret} is set by no service"
        for value in values:
            assert value.startswith(f"${{{secret}:?") and value.endswith("}"), (secret, value)
    for service, var, value in env:
        if _SECRET_NAME.search(var):
            assert value.startswith(f"${{{var}:"), f"{service}: {var} has a value in the file"


def test_every_dependency_is_awaited_healthy_and_has_a_health_check() -> None:
    all_services = compose()["services"]
    for name, svc in all_services.items():
        for target, condition in (svc.get("depends_on") or {}).items():
            if one_shot(all_services[target]):
                assert condition == {"condition": "service_completed_successfully"}, (name, target)
                continue
            assert condition == {"condition": "service_healthy"}, (name, target)
            assert "healthcheck" in all_services[target], f"{name} waits on {target}: no check"
    for name, svc in services().items():
        if not one_shot(svc):
            assert "test" in svc.get("healthcheck", {}), f"{name} has no health check"


def test_the_ledger_is_migrated_before_anything_uses_it() -> None:
    all_services = compose()["services"]
    migrate = all_services["migrate"]
    assert one_shot(migrate) and migrate["command"] == ["ledger", "upgrade"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(all_services["postgres"]["healthcheck"]["test"])
    assert any(v.startswith("postgres-data:") for v in all_services["postgres"]["volumes"])
    for name, svc in services().items():
        url = svc["environment"]["TRIAGE_DATABASE_URL"]
        # The password comes from the one secret, and the URL names the compose service.
        assert url.startswith("postgresql://triage:${POSTGRES_PASSWORD:?"), (name, url)
        assert url.endswith("}@postgres:5432/triage"), (name, url)
        if name != "migrate":
            assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_worker_health_checks_ping_our_celery_app() -> None:
    for name, svc in services().items():
        if svc["command"][0] != "worker":
            continue
        check = " ".join(svc["healthcheck"]["test"][1:])
        target = re.search(r"celery -A (\S+) inspect ping", check)
        assert target, f"{name}: {check}"
        module, _, attr = target.group(1).partition(":")
        app = getattr(importlib.import_module(module), attr)
        assert app.main == "triage" and app.conf.task_default_queue.startswith("triage.")


def test_the_api_health_check_asks_the_served_port() -> None:
    api = services()["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert any(p.endswith(f":{port}") for p in api["ports"])


def test_the_qdrant_server_is_within_one_minor_of_the_client() -> None:
    # Further apart, qdrant-client warns on every connection (and the REST API may differ).
    image = compose()["services"]["qdrant"]["image"]
    server = re.search(r":v(\d+)\.(\d+)", image)
    assert server, image
    client = importlib.metadata.version("qdrant-client").split(".")
    assert server.group(1) == client[0] and abs(int(server.group(2)) - int(client[1])) <= 1


def test_the_cuda_build_has_its_own_tag() -> None:
    # Two builds under one tag: whichever ran last would serve every service.
    tags = {name: svc["image"] for name, svc in services().items()}
    assert tags["classify"] != tags["escalate"] and tags["classify-cpu"] == tags["escalate"]


def test_redis_keeps_what_it_accepted() -> None:
    redis_cmd = " ".join(compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd
