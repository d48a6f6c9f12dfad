"""Write-back to GitHub, Zendesk and Jira against local servers speaking their REST wire formats."""

from __future__ import annotations

import pytest
import redis

from producer import Ticket
from producer.errors import SinkUnavailable
from tests.factories import result_for
from tests.ticket_systems import GitHub, Jira, Zendesk
from worker import settings as worker_settings
from worker.retrying import backoff_s
from worker.writeback.path import write_back_one
from worker.writeback.targets.labels import plan
from worker.writeback.targets.source import write_to_source


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch):
    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(f"TRIAGE_{key.upper()}", value)
        worker_settings.get_settings.cache_clear()

    yield apply
    worker_settings.get_settings.cache_clear()


def gh_ticket(labels: list[str], revision: str = "r1") -> Ticket:
    return Ticket(
        id="acme/app#7",
        source="github",
        body="my card has not arrived",
        revision=revision,
        metadata={"repo": "acme/app", "number": 7, "labels": labels},
    )


def test_github_label_is_written_once_per_revision(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="ghp_test")
        gh.labels[("acme/app", 7)] = ["bug"]
        t = gh_ticket(["bug"])
        first = write_back_one(t, result_for(t, "card_arrival"), [])
        again = write_back_one(t, result_for(t, "card_arrival"), [])
        # A redelivery that lost its sink record reads the issue and sees the label is there.
        direct = write_to_source(t, result_for(t, "card_arrival"))
    assert first["source"] == again["source"] == "labelled" and direct == "already-set"
    assert gh.labels[("acme/app", 7)] == ["bug", "triage:card_arrival"]
    assert gh.writes == 1
    auth = [r.headers["authorization"] for r in gh.requests]
    assert set(auth) == {"Bearer ghp_test"}


def test_github_replaces_our_old_label_on_a_new_revision(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = ["bug", "triage:exchange_rate"]
        t = gh_ticket(["bug", "triage:exchange_rate"], revision="r2")
        assert write_to_source(t, result_for(t, "card_arrival")) == "labelled"
    assert gh.labels[("acme/app", 7)] == ["bug", "triage:card_arrival"]


def test_github_human_edit_is_left_alone(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        # Classified with no label of ours; since then a person set one.
        gh.labels[("acme/app", 7)] = ["triage:pin_blocked"]
        t = gh_ticket([])
        assert write_to_source(t, result_for(t, "card_arrival")) == "changed-since-revision"
        gh.labels[("acme/app", 7)] = ["triage:human"]
        assert write_to_source(t, result_for(t, "card_arrival")) == "human-marked"
        # A human's own label (feedback) does overwrite.
        gh.labels[("acme/app", 7)] = ["triage:pin_blocked"]
        assert write_to_source(t, result_for(t, "card_arrival", "human")) == "labelled"
    assert gh.labels[("acme/app", 7)] == ["triage:card_arrival"]


def test_github_429_retry_after_is_honoured(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = []
        gh.throttle(1, retry_after="42")
        t = gh_ticket([])
        with pytest.raises(SinkUnavailable) as caught:
            write_back_one(t, result_for(t, "card_arrival"), [])
        assert caught.value.retry_after_s == 42.0
        assert backoff_s(0, caught.value) >= 42.0
        # The retry finishes the job; the sinks done before the 429 are not redone.
        done = write_back_one(t, result_for(t, "card_arrival"), [])
    assert done["source"] == "labelled" and gh.writes == 1
    assert rdb.xlen("triage:events") == 1


def test_zendesk_tags_and_field_written_once(rdb: redis.Redis, configure) -> None:
    with Zendesk() as zd:
        configure(
            zendesk_url=zd.url,
            zendesk_email="bot@acme.test",
            zendesk_token="zt",
            zendesk_field_id="99",
        )
        zd.add("123", ["vip"])
        t = Ticket(
            id="123", source="zendesk", body="card?", revision="t0", metadata={"tags": ["vip"]}
        )
        assert write_back_one(t, result_for(t, "Card Arrival"), [])["source"] == "labelled"
        assert write_to_source(t, result_for(t, "Card Arrival")) == "already-set"
    assert zd.tickets["123"]["tags"] == ["vip", "triage:card_arrival"]
    assert zd.tickets["123"]["custom_fields"] == [{"id": 99, "value": "Card Arrival"}]
    assert zd.writes == 1
    assert zd.requests[0].headers["authorization"].startswith("Basic ")


def test_zendesk_human_edit_and_conflict(rdb: redis.Redis, configure) -> None:
    with Zendesk() as zd:
        configure(zendesk_url=zd.url, zendesk_token="zt")
        zd.add("5", ["triage:pin_blocked"])
        t = Ticket(id="5", source="zendesk", body="x", metadata={"tags": []})
        assert write_to_source(t, result_for(t, "card_arrival")) == "changed-since-revision"
        # Edited between our read and our write: Zendesk's safe_update answers 409, we retry.
        zd.add("6", [])
        t6 = Ticket(id="6", source="zendesk", body="x", metadata={"tags": []})
        original = zd.handle

        def edit_then_handle(method, path, body):
            if method == "PUT":
                zd.tickets["6"]["updated_at"] += "!"
            return original(method, path, body)

        zd.handle = edit_then_handle  # type: ignore[method-assign]
        with pytest.raises(SinkUnavailable):
            write_to_source(t6, result_for(t6, "card_arrival"))
    assert zd.writes == 0


def test_jira_labels_written_once_and_human_left_alone(rdb: redis.Redis, configure) -> None:
    with Jira() as jira:
        configure(jira_url=jira.url, jira_email="bot@acme.test", jira_token="jt")
        jira.labels["OPS-1"] = ["backend"]
        jira.labels["OPS-2"] = ["triage:human"]
        t1 = Ticket(id="OPS-1", source="jira", body="x", metadata={"labels": ["backend"]})
        t2 = Ticket(id="OPS-2", source="jira", body="x", metadata={"labels": []})
        assert write_back_one(t1, result_for(t1, "card_arrival"), [])["source"] == "labelled"
        assert write_back_one(t1, result_for(t1, "card_arrival"), [])["source"] == "labelled"
        assert write_to_source(t1, result_for(t1, "card_arrival")) == "already-set"
        assert write_to_source(t2, result_for(t2, "card_arrival")) == "human-marked"
        jira.throttle(1, retry_after="3")
        with pytest.raises(SinkUnavailable) as caught:
            write_to_source(t2, result_for(t2, "card_arrival"))
    assert caught.value.retry_after_s == 3.0
    assert jira.labels == {"OPS-1": ["backend", "triage:card_arrival"], "OPS-2": ["triage:human"]}
    assert jira.writes == 1


def test_unconfigured_and_unknown_sources_are_recorded(rdb: redis.Redis, configure) -> None:
    configure()
    t = gh_ticket([])
    assert write_to_source(t, result_for(t, "a")) == "not-configured"
    api = Ticket(id="1", body="x")
    assert write_to_source(api, result_for(api, "a")) == "none"


def test_plan_only_touches_our_prefix() -> None:
    p = plan(
        ["bug", "triage:a"],
        ["bug", "triage:a"],
        "b",
        prefix="triage:",
        marker="triage:human",
        by_human=False,
    )
    assert p.add == ["triage:b"] and p.remove == ["triage:a"] and p.skip is None
