"""Write-back to GitHub, Zendesk and Jira against local servers speaking their REST wire formats:
labels land on the ticket's verified origin only, in the task's own namespace, and never over a
person's."""

from __future__ import annotations

import httpx
import pytest
import redis

from producer import Ticket
from producer.errors import SinkRejected, SinkUnavailable
from producer.schemas import GitHubIssue, JiraIssue, ZendeskTicket
from tests.factories import result_for
from tests.ticket_systems import GitHub, Jira, Zendesk
from worker import settings as worker_settings
from worker.retrying import backoff_s
from worker.writeback.path import write_back_one
from worker.writeback.targets import http
from worker.writeback.targets.labels import plan
from worker.writeback.targets.source import write_to_source

CARD = "triage:category:card_arrival"


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch):
    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(f"TRIAGE_{key.upper()}", value)
        worker_settings.get_settings.cache_clear()

    yield apply
    worker_settings.get_settings.cache_clear()


def gh_ticket(labels: list[str], revision: str = "r1", task: str = "category") -> Ticket:
    return Ticket(
        id="acme/app#7",
        source="github",
        body="my card has not arrived",
        revision=revision,
        task=task,
        metadata={"labels": labels},
        origin=GitHubIssue(repo="acme/app", number=7),
    )


def zd_ticket(tags: list[str], ticket_id: int = 123, task: str = "category") -> Ticket:
    return Ticket(
        id=str(ticket_id),
        source="zendesk",
        body="card?",
        revision="t0",
        task=task,
        metadata={"tags": tags},
        origin=ZendeskTicket(id=ticket_id),
    )


def jira_ticket(key: str, labels: list[str], task: str = "category") -> Ticket:
    return Ticket(
        id=key,
        source="jira",
        body="x",
        task=task,
        metadata={"labels": labels},
        origin=JiraIssue(key=key),
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
    assert gh.labels[("acme/app", 7)] == ["bug", CARD]
    assert gh.writes == 1
    auth = [r.headers["authorization"] for r in gh.requests]
    assert set(auth) == {"Bearer ghp_test"}


def test_github_replaces_our_old_label_on_a_new_revision(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        old = "triage:category:exchange_rate"
        gh.labels[("acme/app", 7)] = ["bug", old]
        t = gh_ticket(["bug", old], revision="r2")
        assert write_to_source(t, result_for(t, "card_arrival")) == "labelled"
    assert gh.labels[("acme/app", 7)] == ["bug", CARD]
    # The old label's name went into the URL as one percent-encoded segment.
    [delete] = [r for r in gh.requests if r.method == "DELETE"]
    assert delete.path.endswith("/labels/triage%3Acategory%3Aexchange_rate")


def test_labels_from_before_task_namespaces_belong_to_the_category_task(
    rdb: redis.Redis, configure
) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = ["triage:exchange_rate", "triage:human-ish", "bug"]
        t = gh_ticket(["triage:exchange_rate", "triage:human-ish", "bug"])
        assert write_to_source(t, result_for(t, "card_arrival")) == "labelled"
    assert gh.labels[("acme/app", 7)] == ["bug", CARD]


def test_github_human_edit_is_left_alone(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        # Classified with no label of ours; since then a person set one.
        gh.labels[("acme/app", 7)] = ["triage:category:pin_blocked"]
        t = gh_ticket([])
        assert write_to_source(t, result_for(t, "card_arrival")) == "changed-since-revision"
        gh.labels[("acme/app", 7)] = ["triage:human"]
        assert write_to_source(t, result_for(t, "card_arrival")) == "human-marked"
        # A human's own label (feedback) does overwrite.
        gh.labels[("acme/app", 7)] = ["triage:category:pin_blocked"]
        assert write_to_source(t, result_for(t, "card_arrival", "human")) == "labelled"
    assert gh.labels[("acme/app", 7)] == [CARD]


def test_the_human_marker_stays_global(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = ["triage:human"]
        for task in ("category", "priority"):
            t = gh_ticket([], task=task)
            assert write_to_source(t, result_for(t, "x")) == "human-marked"
        # A person's label removes no marker: it is no task's.
        t = gh_ticket([], task="priority")
        assert write_to_source(t, result_for(t, "high", "human")) == "labelled"
    assert gh.labels[("acme/app", 7)] == ["triage:human", "triage:priority:high"]
    assert gh.writes == 1


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


def test_github_enterprise_base_path_is_kept(rdb: redis.Redis, configure) -> None:
    with GitHub(prefix="/api/v3") as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = []
        t = gh_ticket([])
        assert write_to_source(t, result_for(t, "card_arrival")) == "labelled"
    assert {r.path.split("/repos/")[0] for r in gh.requests} == {"/api/v3"}


def test_zendesk_tags_and_field_written_once(rdb: redis.Redis, configure) -> None:
    with Zendesk() as zd:
        configure(
            zendesk_url=zd.url,
            zendesk_email="bot@acme.test",
            zendesk_token="zt",
            zendesk_field_id="99",  # the older setting: the category task's field
        )
        zd.add("123", ["vip"])
        t = zd_ticket(["vip"])
        assert write_back_one(t, result_for(t, "Card Arrival"), [])["source"] == "labelled"
        assert write_to_source(t, result_for(t, "Card Arrival")) == "already-set"
    assert zd.tickets["123"]["tags"] == ["vip", CARD]
    assert zd.tickets["123"]["custom_fields"] == [{"id": 99, "value": "Card Arrival"}]
    assert zd.writes == 1
    assert zd.requests[0].headers["authorization"].startswith("Basic ")


def test_zendesk_human_edit_and_conflict(rdb: redis.Redis, configure) -> None:
    with Zendesk() as zd:
        configure(zendesk_url=zd.url, zendesk_token="zt")
        zd.add("5", ["triage:category:pin_blocked"])
        t = zd_ticket([], 5)
        assert write_to_source(t, result_for(t, "card_arrival")) == "changed-since-revision"
        # Edited between our read and our write: Zendesk's safe_update answers 409, we retry.
        zd.add("6", [])
        t6 = zd_ticket([], 6)
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
        t1 = jira_ticket("OPS-1", ["backend"])
        t2 = jira_ticket("OPS-2", [])
        assert write_back_one(t1, result_for(t1, "card_arrival"), [])["source"] == "labelled"
        assert write_back_one(t1, result_for(t1, "card_arrival"), [])["source"] == "labelled"
        assert write_to_source(t1, result_for(t1, "card_arrival")) == "already-set"
        assert write_to_source(t2, result_for(t2, "card_arrival")) == "human-marked"
        jira.throttle(1, retry_after="3")
        with pytest.raises(SinkUnavailable) as caught:
            write_to_source(t2, result_for(t2, "card_arrival"))
    assert caught.value.retry_after_s == 3.0
    assert jira.labels == {"OPS-1": ["backend", CARD], "OPS-2": ["triage:human"]}
    assert jira.writes == 1


def test_unconfigured_and_unknown_sources_are_recorded(rdb: redis.Redis, configure) -> None:
    configure()
    t = gh_ticket([])
    assert write_to_source(t, result_for(t, "a")) == "not-configured"
    api = Ticket(id="1", body="x")
    assert write_to_source(api, result_for(api, "a")) == "none"


# -- two tasks on one ticket -----------------------------------------------------------------


def test_two_tasks_on_one_github_issue_keep_their_own_labels(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("acme/app", 7)] = ["bug"]
        cat, pri = gh_ticket(["bug"]), gh_ticket(["bug"], task="priority")
        assert write_to_source(cat, result_for(cat, "card_arrival")) == "labelled"
        assert write_to_source(pri, result_for(pri, "high")) == "labelled"
        # A new revision of each: each replaces its own label and no other.
        pri2 = gh_ticket(["bug", CARD, "triage:priority:high"], "r2", task="priority")
        assert write_to_source(pri2, result_for(pri2, "low")) == "labelled"
        seen2 = ["bug", CARD, "triage:priority:low"]
        cat2 = gh_ticket(seen2, "r2")
        assert write_to_source(cat2, result_for(cat2, "pin_blocked")) == "labelled"
    assert sorted(gh.labels[("acme/app", 7)]) == [
        "bug",
        "triage:category:pin_blocked",
        "triage:priority:low",
    ]
    deleted = sorted(r.path.rsplit("/", 1)[1] for r in gh.requests if r.method == "DELETE")
    assert deleted == ["triage%3Acategory%3Acard_arrival", "triage%3Apriority%3Ahigh"]


def test_two_tasks_on_one_zendesk_ticket_keep_their_tags_and_fields(
    rdb: redis.Redis, configure
) -> None:
    with Zendesk() as zd:
        configure(
            zendesk_url=zd.url,
            zendesk_token="zt",
            zendesk_field_ids='{"category": 11, "priority": 12}',
        )
        zd.add("9", ["vip"])
        cat, pri = zd_ticket(["vip"], 9), zd_ticket(["vip"], 9, task="priority")
        assert write_to_source(cat, result_for(cat, "Card Arrival")) == "labelled"
        assert write_to_source(pri, result_for(pri, "High")) == "labelled"
        seen = ["vip", CARD, "triage:priority:high"]
        pri2 = zd_ticket(seen, 9, task="priority")
        assert write_to_source(pri2, result_for(pri2, "Low")) == "labelled"
    assert zd.tickets["9"]["tags"] == ["vip", CARD, "triage:priority:low"]
    assert zd.tickets["9"]["custom_fields"] == [
        {"id": 11, "value": "Card Arrival"},
        {"id": 12, "value": "Low"},
    ]


def test_two_tasks_on_one_jira_issue_keep_their_own_labels(rdb: redis.Redis, configure) -> None:
    with Jira() as jira:
        configure(jira_url=jira.url, jira_token="jt")
        jira.labels["OPS-3"] = [CARD]
        pri = jira_ticket("OPS-3", [CARD], task="priority")
        assert write_to_source(pri, result_for(pri, "high")) == "labelled"
        [put] = [r for r in jira.requests if r.method == "PUT"]
    assert put.json == {"update": {"labels": [{"add": "triage:priority:high"}]}}
    assert jira.labels["OPS-3"] == [CARD, "triage:priority:high"]


# -- the target is the verified origin, nothing else ------------------------------------------


def test_metadata_never_redirects_a_write(rdb: redis.Redis, configure) -> None:
    """Today's main wrote to metadata.repo / number (any token holder could aim the bot)."""
    with GitHub() as gh:
        configure(github_api_url=gh.url, github_token="t")
        gh.labels[("victim/repo", 1)] = ["triage:human"]
        gh.labels[("acme/app", 7)] = []
        # No verified origin: nothing is written anywhere, whatever metadata and id say.
        spoofed = Ticket(
            id="victim/repo#1",
            source="github",
            body="x",
            metadata={"repo": "victim/repo", "number": 1, "labels": []},
        )
        assert write_back_one(spoofed, result_for(spoofed, "anything"), [])["source"] == "skipped"
        assert gh.requests == []
        # With an origin, metadata pointing elsewhere is data: the origin is written.
        t = gh_ticket([]).model_copy(
            update={"metadata": {"repo": "victim/repo", "number": 1, "labels": []}}
        )
        assert write_to_source(t, result_for(t, "card_arrival")) == "labelled"
    assert {r.path.split("/issues/")[0] for r in gh.requests} == {"/repos/acme/app"}
    assert gh.labels[("victim/repo", 1)] == ["triage:human"]


def test_origin_of_another_system_is_not_written(rdb: redis.Redis, configure) -> None:
    with GitHub() as gh, Zendesk() as zd:
        configure(github_api_url=gh.url, github_token="t", zendesk_url=zd.url, zendesk_token="z")
        wrong = gh_ticket([]).model_copy(update={"origin": ZendeskTicket(id=5)})
        assert write_to_source(wrong, result_for(wrong, "a")) == "skipped"
        zd_wrong = zd_ticket([]).model_copy(update={"origin": GitHubIssue(repo="a/b", number=1)})
        assert write_to_source(zd_wrong, result_for(zd_wrong, "a")) == "skipped"
    assert gh.requests == [] and zd.requests == []


@pytest.mark.parametrize(
    ("source", "ticket_id"),
    [("zendesk", "1/../../users/me"), ("github", "../../orgs/x#1"), ("jira", "../../../x")],
)
def test_path_traversal_ids_are_never_requested(
    rdb: redis.Redis, configure, source: str, ticket_id: str
) -> None:
    """Today's main sent ``1/../../users/me`` to Zendesk as ``/api/v2/users/me.json``."""
    with GitHub(prefix="/api/v3") as gh, Zendesk() as zd, Jira() as jira:
        configure(
            github_api_url=gh.url,
            github_token="t",
            zendesk_url=zd.url,
            zendesk_token="z",
            jira_url=jira.url,
            jira_token="j",
        )
        t = Ticket(
            id=ticket_id,
            source=source,
            body="x",
            metadata={"repo": "../../orgs/x", "number": 1, "labels": [], "tags": []},
        )
        assert write_back_one(t, result_for(t, "a"), [])["source"] == "skipped"
    assert gh.requests == [] and zd.requests == [] and jira.requests == []


def test_an_origin_that_slipped_past_validation_still_stays_under_the_base(
    rdb: redis.Redis, configure
) -> None:
    with GitHub(prefix="/api/v3") as gh:
        configure(github_api_url=gh.url, github_token="t")
        forged = GitHubIssue.model_construct(system="github", repo="../../orgs/x", number=1)
        t = gh_ticket([]).model_copy(update={"origin": forged})
        with pytest.raises(SinkRejected, match="not allowed"):
            write_to_source(t, result_for(t, "a"))
    assert gh.requests == []


def test_urls_are_built_from_encoded_segments_under_the_base() -> None:
    base = "https://ghe.example/api/v3"
    assert http.under(base, "repos", "a", "b", "issues", "7") == (
        "https://ghe.example/api/v3/repos/a/b/issues/7"
    )
    assert http.under(base, "labels", "x/../../y") == (
        "https://ghe.example/api/v3/labels/x%2F..%2F..%2Fy"
    )
    assert http.under(base, "a?b#c") == "https://ghe.example/api/v3/a%3Fb%23c"
    for segment in ("..", ".", ""):
        with pytest.raises(SinkRejected):
            http.under(base, "repos", segment)
    root = httpx.URL("https://ghe.example/api/v3/")
    assert not http.inside(httpx.URL("https://ghe.example/api/v3x/"), root)
    assert not http.inside(httpx.URL("http://ghe.example/api/v3/x"), root)
    assert not http.inside(httpx.URL("https://ghe.example:444/api/v3/x"), root)
    assert not http.inside(httpx.URL("https://u:p@ghe.example/api/v3/x"), root)
    assert not http.inside(httpx.URL("https://evil.example/api/v3/x"), root)
    assert http.inside(httpx.URL("https://ghe.example:443/api/v3/x"), root)


def test_errors_name_no_credentials_and_carry_no_body() -> None:
    with GitHub() as gh:
        url = gh.url.replace("http://", "http://user:pw@") + "/repos/no/such/issues/1?tok=s"
        with pytest.raises(SinkRejected) as caught:
            http.call("GET", url, what="github", timeout_s=5)
    text = str(caught.value)
    assert "pw" not in text and "tok=" not in text and "Not Found" not in text
    assert "404" in text


def test_plan_only_touches_the_task_namespace() -> None:
    def ours(name: str) -> bool:
        return name.startswith("triage:category:")

    p = plan(
        ["bug", "triage:category:a", "triage:priority:x", "triage:human"],
        ["bug", "triage:category:a", "triage:priority:y"],
        "triage:category:b",
        ours=ours,
        marker="triage:human",
        by_human=True,
    )
    assert p.add == ["triage:category:b"] and p.remove == ["triage:category:a"] and p.skip is None
