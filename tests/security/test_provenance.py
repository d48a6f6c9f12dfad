"""Provenance decides the target (docs/security.md): the attacks of issue 17 that need no feedback
route, each from the front door (a signed webhook, `POST /v1/tickets`, `triage backfill`) to the
write-back against local GitHub, Zendesk and Jira imitations. Each is refused with a 4xx, or
acted on nowhere, and the imitation is asked nothing; the legitimate flows still label each
ticket once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from producer.backfill import BackfillConfig, run_backfill
from producer.http import create_app
from producer.schemas import GitHubIssue, JiraIssue, Ticket, TriageResult, ZendeskTicket
from producer.settings import ProducerSettings
from tests.factories import result_for
from tests.producer.http_support import (
    AUTH,
    BOTS,
    PAYLOADS,
    RELABELS,
    http_settings,
    kwargs_of,
    post,
    queued,
    sign,
    writebacks,
)
from tests.ticket_systems import GitHub, Jira, Zendesk
from worker import resources
from worker import settings as worker_settings
from worker.writeback.path import write_back_one
from worker.writeback.targets.source import write_to_source

CARD, LOST = "triage:category:card_arrival", "triage:category:lost_card"


class Systems:
    def __init__(self, gh: GitHub, zd: Zendesk, jira: Jira) -> None:
        self.gh, self.zd, self.jira = gh, zd, jira

    def requests(self) -> int:
        return len(self.gh.requests) + len(self.zd.requests) + len(self.jira.requests)

    def writes(self) -> int:
        return self.gh.writes + self.zd.writes + self.jira.writes


@pytest.fixture
def systems(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Systems]:
    """The three imitations (GitHub under an Enterprise base path), the worker pointed at them,
    the issue each webhook payload names already there."""
    with GitHub(prefix="/api/v3") as gh, Zendesk() as zd, Jira() as jira:
        env = {
            "GITHUB_API_URL": gh.url,
            "GITHUB_TOKEN": "ghp",
            "ZENDESK_URL": zd.url,
            "ZENDESK_TOKEN": "zt",
            "JIRA_URL": jira.url,
            "JIRA_TOKEN": "jt",
            "DATA_DIR": str(tmp_path / "data"),
        }
        for key, value in env.items():
            monkeypatch.setenv(f"TRIAGE_{key}", value)
        worker_settings.get_settings.cache_clear()
        gh.labels[("acme/app", 7)] = ["bug"]
        zd.add("123", ["vip", "late"])
        jira.labels["OPS-1"] = []
        yield Systems(gh, zd, jira)
    resources.close_all()
    worker_settings.get_settings.cache_clear()


@pytest.fixture
def client(redis_url: str, tmp_path) -> Iterator[TestClient]:
    app = create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url, **BOTS))
    with TestClient(app) as c:
        yield c


def webhook(client: TestClient, source: str, payload: Any, delivery: str = "d-1") -> Any:
    body = json.dumps(payload).encode()
    return post(client, source, body, sign(source, body, delivery=delivery))


def classify_queue(rdb: redis.Redis) -> list[Ticket]:
    return [Ticket.model_validate(kwargs_of(m)["ticket"]) for m in queued(rdb)]


def revision(rdb: redis.Redis, updated_at: str) -> Ticket:
    """The queued ticket of that revision."""
    [ticket] = [t for t in classify_queue(rdb) if t.revision == updated_at]
    return ticket


# -- the legitimate flow ---------------------------------------------------------------------


@pytest.mark.parametrize("source", ["github", "zendesk", "jira"])
def test_a_signed_webhooks_ticket_is_labelled_and_written_back_once(
    client, rdb, systems, source
) -> None:
    assert webhook(client, source, PAYLOADS[source]).status_code == 202
    assert webhook(client, source, PAYLOADS[source]).status_code == 200  # a redelivery
    [ticket] = classify_queue(rdb)
    assert (
        ticket.origin
        == {
            "github": GitHubIssue(repo="acme/app", number=7),
            "zendesk": ZendeskTicket(id=123),
            "jira": JiraIssue(key="OPS-1"),
        }[source]
    )
    first = write_back_one(ticket, result_for(ticket, "card_arrival"), [])
    again = write_back_one(ticket, result_for(ticket, "card_arrival"), [])
    assert first["source"] == again["source"] == "labelled"
    assert systems.writes() == 1
    assert {
        "github": systems.gh.labels[("acme/app", 7)],
        "zendesk": systems.zd.tickets["123"]["tags"],
        "jira": systems.jira.labels["OPS-1"],
    }[source][-1] == CARD


# -- nothing but the signed payload aims a write ---------------------------------------------


def test_metadata_repo_cannot_aim_the_bot(client, rdb, systems) -> None:
    """Today's main: `source: github` with `metadata.repo` through `/v1/tickets` or the generic
    webhook was written to that repository."""
    aim = {"repo": "victim/repo", "number": 1, "labels": []}
    spoof = {"id": "victim/repo#1", "source": "github", "body": "x", "metadata": aim}
    assert client.post("/v1/tickets", json=spoof, headers=AUTH).status_code == 403
    generic = webhook(client, "generic", spoof, delivery="g-1")
    assert generic.status_code in (403, 422)
    assert queued(rdb) == []
    # A source of its own takes metadata as data: written nowhere.
    taken = {**spoof, "source": "helpdesk"}
    assert client.post("/v1/tickets", json=taken, headers=AUTH).status_code == 202
    [ticket] = classify_queue(rdb)
    assert write_back_one(ticket, result_for(ticket, "anything"), [])["source"] == "none"
    # The same metadata on a ticket that claims GitHub without a verified origin: skipped.
    claimed = ticket.model_copy(update={"source": "github"})
    assert write_back_one(claimed, result_for(claimed, "anything"), [])["source"] == "skipped"
    assert systems.requests() == 0


def test_a_spoofed_source_through_backfill_is_rejected_and_claims_nothing(
    client, rdb, systems, tmp_path
) -> None:
    """Today's main: a backfill row with `source: zendesk` was enqueued, and its dedupe key made
    the genuine signed webhook of that ticket a `duplicate`."""
    row = {
        "id": "123",
        "source": "zendesk",
        "body": "x",
        "revision": "2026-01-01",
        "origin": {"system": "zendesk", "id": 123},
        "metadata": {"repo": "victim/repo"},
    }
    rejects = tmp_path / "rejects.jsonl"
    stats = run_backfill(
        io.BytesIO(json.dumps(row).encode() + b"\n"), BackfillConfig(rejects_path=rejects)
    )
    assert (stats.enqueued, stats.rejected) == (0, 1)
    assert "--grant zendesk" in json.loads(rejects.read_text())["errors"][0]["error"]
    assert queued(rdb) == []
    # Granted, the row is taken, on its own channel: the signed webhook is no duplicate.
    granted = BackfillConfig(grants=frozenset({"zendesk"}))
    assert run_backfill(io.BytesIO(json.dumps(row).encode()), granted).enqueued == 1
    answer = webhook(client, "zendesk", PAYLOADS["zendesk"])
    assert answer.status_code == 202 and answer.json()["duplicate"] is False
    assert systems.requests() == 0


@pytest.mark.parametrize(
    ("source", "change"),
    [
        ("zendesk", {"ticket": {**PAYLOADS["zendesk"]["ticket"], "id": "1/../../users/me"}}),
        ("github", {"repository": {"full_name": "../../orgs/x"}}),
        ("github", {"repository": {"full_name": "acme/.."}}),
        ("jira", {"issue": {**PAYLOADS["jira"]["issue"], "key": "../../../rest/api/2/myself"}}),
    ],
)
def test_path_traversal_ids_are_refused_at_intake(client, rdb, systems, source, change) -> None:
    """Today's main: Zendesk id ``1/../../users/me`` became GET and PUT of
    ``/api/v2/users/me.json``; ``../../orgs/x`` climbed out of the GitHub API base path."""
    answer = webhook(client, source, {**PAYLOADS[source], **change})
    assert answer.status_code == 422, answer.text
    assert queued(rdb) == []
    # And by hand, without an origin, such a ticket is written nowhere.
    ticket = Ticket(id="1/../../users/me", source=source, body="x", metadata={"repo": "../../x"})
    assert write_back_one(ticket, result_for(ticket, "a"), [])["source"] == "skipped"
    assert systems.requests() == 0


@pytest.mark.parametrize(
    ("source", "path", "value"),
    [
        ("github", ("issue", "labels"), [{"name": {"deep": ["wrong"]}}]),
        ("github", ("issue", "number"), 10**4000),
        ("github", ("repository",), ["acme/app"]),
        ("jira", ("issue", "fields"), {"labels": "not a list", "summary": 5}),
        ("jira", ("issue", "fields", "description"), {"content": [{"content": 7}], "text": 1}),
        ("zendesk", ("ticket", "tags"), [{"nested": True}]),
        ("zendesk", ("ticket", "id"), 2**64),
    ],
)
def test_wrong_json_types_deep_in_a_payload_are_a_422(
    client, rdb, systems, source, path, value
) -> None:
    """Today's main: a wrong JSON type deep in a GitHub or Jira payload, or a huge integer, gave
    500. (A description of any shape is read as text: that one is taken.)"""
    payload = json.loads(json.dumps(PAYLOADS[source]))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    answer = webhook(client, source, payload)
    assert answer.status_code in (202, 422) and answer.status_code < 500, answer.text
    if path[-1] != "description":
        assert answer.status_code == 422 and queued(rdb) == []
    assert systems.requests() == 0


# -- several tasks, and people -----------------------------------------------------------------


def test_two_tasks_on_one_ticket_never_remove_each_others_labels(client, rdb, systems) -> None:
    """Today's main: category and priority results removed each other's ``triage:`` labels."""
    assert webhook(client, "github", PAYLOADS["github"]).status_code == 202
    [category] = classify_queue(rdb)
    priority = category.model_copy(update={"task": "priority"})
    assert (
        write_back_one(category, result_for(category, "card_arrival"), [])["source"] == "labelled"
    )
    assert write_back_one(priority, result_for(priority, "High"), [])["source"] == "labelled"
    # The next revision of the issue: each task replaces its own label, and only its own.
    edited = {**PAYLOADS["github"], "action": "edited"}
    edited["issue"] = {
        **PAYLOADS["github"]["issue"],
        "updated_at": "2026-01-02T00:00:00Z",
        "labels": [{"name": n} for n in systems.gh.labels[("acme/app", 7)]],
    }
    assert webhook(client, "github", edited, delivery="d-2").status_code == 202
    category2 = revision(rdb, "2026-01-02T00:00:00Z")
    assert write_back_one(category2, result_for(category2, "lost_card"), [])["source"] == "labelled"
    assert systems.gh.labels[("acme/app", 7)] == ["bug", "triage:priority:High", LOST]


@pytest.mark.slow  # the human label is embedded for the index: the real embedder loads
def test_a_persons_relabel_is_captured_and_never_overwritten(client, rdb, systems) -> None:
    """Today's main: a person's relabel in GitHub was overwritten at the next edit unless they
    also added ``triage:human``, and was never captured."""
    gh = systems.gh
    assert webhook(client, "github", PAYLOADS["github"]).status_code == 202
    [ticket] = classify_queue(rdb)
    assert write_back_one(ticket, result_for(ticket, "card_arrival"), [])["source"] == "labelled"
    # A person adds another label of ours; GitHub tells us who.
    gh.labels[("acme/app", 7)].append(LOST)
    relabel = json.loads(json.dumps(RELABELS["github"]))
    relabel["issue"]["labels"] = [{"name": n} for n in gh.labels[("acme/app", 7)]]
    answer = webhook(client, "github", relabel, delivery="d-2")
    assert answer.status_code == 202, answer.text
    [item] = writebacks(rdb)
    human = TriageResult.model_validate(item["result"])
    assert (human.decided_by, human.label, human.labelled_by, human.via) == (
        "human",
        "lost_card",
        "alice",
        "github",
    )
    human_ticket = Ticket.model_validate(item["ticket"])
    assert human_ticket.origin == GitHubIssue(repo="acme/app", number=7)
    assert write_back_one(human_ticket, human, [])["source"] == "labelled"
    assert gh.labels[("acme/app", 7)] == ["bug", LOST]  # the model's label made way
    # Our own removal comes back as an `unlabeled` event by the bot: ignored, no loop.
    ours = {**relabel, "action": "unlabeled", "label": {"name": CARD}}
    ours["sender"] = {"login": BOTS["github_bot_login"]}
    assert webhook(client, "github", ours, delivery="d-3").status_code == 200
    assert len(writebacks(rdb)) == 1
    # The model, at the revision it classified (redelivered) and at the next one, is applied
    # nowhere.
    writes = gh.writes
    write_back_one(ticket, result_for(ticket, "card_arrival", confidence=0.99), [])
    edited = {**PAYLOADS["github"], "action": "edited"}
    edited["issue"] = {
        **PAYLOADS["github"]["issue"],
        "updated_at": "2026-02-01T00:00:00Z",
        "labels": [{"name": n} for n in gh.labels[("acme/app", 7)]],
    }
    assert webhook(client, "github", edited, delivery="d-4").status_code == 202
    newer = revision(rdb, "2026-02-01T00:00:00Z")
    assert write_back_one(newer, result_for(newer, "card_arrival"), [])["source"] == (
        "kept-human-label"
    )
    assert gh.writes == writes and gh.labels[("acme/app", 7)] == ["bug", LOST]


@pytest.mark.parametrize("source", ["jira", "zendesk"])
def test_relabels_in_jira_and_zendesk_land_on_their_origin_and_ours_loop_nowhere(
    client, rdb, systems, source
) -> None:
    assert webhook(client, source, PAYLOADS[source]).status_code == 202
    [ticket] = classify_queue(rdb)
    assert write_back_one(ticket, result_for(ticket, "card_arrival"), [])["source"] == "labelled"
    # The bot's own change, reported back: ignored.
    if source == "jira":
        ours = {**RELABELS["jira"], "user": {"accountId": BOTS["jira_bot_account_id"]}}
        systems.jira.labels["OPS-1"] = [LOST]  # what the person did
    else:
        ours = {**RELABELS["zendesk"], "updater": {"id": int(BOTS["zendesk_bot_user_id"])}}
        systems.zd.edit("123", ["vip", "late", LOST])
    assert webhook(client, source, ours, delivery="d-2").status_code == 200
    assert writebacks(rdb) == []
    answer = webhook(client, source, RELABELS[source], delivery="d-3")
    assert answer.status_code == 202, answer.text
    [item] = writebacks(rdb)
    human = TriageResult.model_validate(item["result"])
    assert (human.label, human.via) == ("lost_card", source)
    assert human.labelled_by == {"jira": "person-1", "zendesk": "77"}[source]
    human_ticket = Ticket.model_validate(item["ticket"])
    assert human_ticket.origin == ticket.origin
    assert write_to_source(human_ticket, human) == "already-set"  # the person's label stands
    assert write_to_source(ticket, result_for(ticket, "card_arrival")) == "changed-since-revision"
    assert systems.writes() == 1
