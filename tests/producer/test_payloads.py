"""The payload adapters: where a ticket may be written back comes from the signed payload alone,
a person's relabel becomes a `HumanLabel`, the bot's own changes are ignored, and any payload
of the wrong shape is an `InvalidTicket`, never another exception."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.errors import InvalidTicket
from producer.feedback import HumanLabel
from producer.http import payloads
from producer.schemas import GitHubIssue, JiraIssue, Ticket, ZendeskTicket
from producer.settings import ProducerSettings
from tests.producer.http_support import PAYLOADS

BOTS = ProducerSettings(
    github_bot_login="triage-bot",
    jira_bot_account_id="bot-account",
    zendesk_bot_user_id="900",
)

# The signed-webhook samples the HTTP tests send too (copies: tests here edit them).
GITHUB: dict[str, Any] = copy.deepcopy(PAYLOADS["github"])
ZENDESK: dict[str, Any] = copy.deepcopy(PAYLOADS["zendesk"])
JIRA: dict[str, Any] = {
    "webhookEvent": "jira:issue_created",
    "user": {"accountId": "alice-account"},
    "issue": {
        "key": "OPS-1",
        "fields": {
            "summary": "Card not arrived",
            "description": {
                "type": "doc",
                "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "two weeks"}]}
                ],
            },
            "labels": ["backend"],
            "updated": "2026-01-01",
        },
    },
}
GENERIC: dict[str, Any] = {"id": "g-1", "subject": "Card not arrived", "body": "two weeks"}
PAYLOADS = {"github": GITHUB, "zendesk": ZENDESK, "jira": JIRA, "generic": GENERIC}
HEADERS = {"github": {"x-github-event": "issues"}}


def adapt(source: str, payload: Any, settings: ProducerSettings = BOTS) -> Any:
    return payloads.ADAPTERS[source](payload, HEADERS.get(source, {}), settings)


def edited(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `payload` with dotted paths set (``"issue.number"=...``)."""
    out = copy.deepcopy(payload)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return out


# -- tickets: the origin is the signed payload's ----------------------------------------------


def test_each_system_names_its_origin() -> None:
    gh, zd, jira = adapt("github", GITHUB), adapt("zendesk", ZENDESK), adapt("jira", JIRA)
    assert isinstance(gh, Ticket) and gh.origin == GitHubIssue(repo="acme/app", number=7)
    assert gh.id == "acme/app#7" and gh.metadata == {"labels": ["bug"]}
    assert isinstance(zd, Ticket) and zd.origin == ZendeskTicket(id=123)
    assert zd.id == "123" and zd.metadata == {"tags": ["vip", "late"]}
    assert isinstance(jira, Ticket) and jira.origin == JiraIssue(key="OPS-1")
    assert jira.body == "two weeks" and jira.metadata == {"labels": ["backend"]}
    string_id = adapt("zendesk", edited(ZENDESK, ticket__id="123"))
    assert string_id.origin == ZendeskTicket(id=123)


def test_metadata_holds_no_coordinates() -> None:
    for source in ("github", "zendesk", "jira"):
        ticket = adapt(source, PAYLOADS[source])
        assert set(ticket.metadata) <= {"labels", "tags"}


@pytest.mark.parametrize(
    ("source", "path", "value"),
    [
        ("github", "repository__full_name", "../../orgs/x"),
        ("github", "repository__full_name", "acme/.."),
        ("github", "repository__full_name", "acme"),
        ("github", "repository__full_name", "acme/app/../../users"),
        ("github", "repository__full_name", "acme/app\n"),
        ("github", "issue__number", 0),
        ("github", "issue__number", -3),
        ("github", "issue__number", 2**31),
        ("github", "issue__number", 10**400),
        ("zendesk", "ticket__id", "1/../../users/me"),
        ("zendesk", "ticket__id", "12a"),
        ("zendesk", "ticket__id", 0),
        ("zendesk", "ticket__id", 2**53),
        ("zendesk", "ticket__id", "9" * 40),
        ("jira", "issue__key", "../../../x"),
        ("jira", "issue__key", "ops-1"),
        ("jira", "issue__key", "OPS-1/../2"),
        ("jira", "issue__key", "OPS-0"),
    ],
)
def test_coordinates_outside_the_grammar_are_invalid(source: str, path: str, value: Any) -> None:
    with pytest.raises(InvalidTicket) as caught:
        adapt(source, edited(PAYLOADS[source], **{path: value}))
    assert caught.value.errors and caught.value.errors[0]["field"]


@pytest.mark.parametrize(
    ("source", "path", "value"),
    [
        ("github", "issue__number", "seven"),
        ("github", "issue__number", True),
        ("github", "issue__number", 7.0),
        ("github", "issue__labels", {"name": "bug"}),
        ("github", "issue__labels__0", "bug"),
        ("github", "issue__labels__0", {"name": ["bug"]}),
        ("github", "issue__body", {"text": "x"}),
        ("github", "issue__updated_at", 5),
        ("github", "issue__title", None),
        ("github", "repository", []),
        ("zendesk", "ticket__id", [1]),
        ("zendesk", "ticket__tags", 5),
        ("zendesk", "ticket__tags", [["vip"]]),
        ("zendesk", "ticket__subject", {"a": 1}),
        ("zendesk", "ticket", "123"),
        ("jira", "issue__key", 1),
        ("jira", "issue__fields", []),
        ("jira", "issue__fields__labels", "backend"),
        ("jira", "issue__fields__labels", [1]),
        ("jira", "issue__fields__summary", 3),
        ("jira", "issue__fields__updated", {"at": 1}),
        ("jira", "webhookEvent", None),
        ("generic", "id", 5),
        ("generic", "metadata", [1]),
    ],
)
def test_wrong_json_types_deep_in_a_payload_are_invalid(source: str, path: str, value: Any) -> None:
    """Today's main answered 500 to some of these (a wrong type deep in a GitHub/Jira payload)."""
    with pytest.raises(InvalidTicket):
        adapt(source, edited(PAYLOADS[source], **{path: value}))


def test_jira_description_of_any_shape_is_read_without_recursion() -> None:
    deep: Any = {"type": "text", "text": "bottom"}
    for _ in range(100_000):
        deep = {"type": "paragraph", "content": [deep]}
    odd = {"content": [1, "x", None, {"content": 5}, {"text": 7}, {"text": "ok"}]}
    for description in (deep, odd, 5, [1, 2], None):
        payload = edited(JIRA, issue__fields__description=description)
        ticket = adapt("jira", payload)
        assert isinstance(ticket, Ticket)
    assert adapt("jira", edited(JIRA, issue__fields__description=odd)).body == "ok"


def test_changelog_of_the_wrong_shape_is_invalid() -> None:
    for changelog in (
        {"items": [5]},
        {"items": "labels"},
        {"items": [{"field": "labels", "toString": 3}]},
    ):
        payload = {**JIRA, "webhookEvent": "jira:issue_updated", "changelog": changelog}
        with pytest.raises(InvalidTicket):
            adapt("jira", payload)


def test_the_generic_webhook_never_sets_an_origin() -> None:
    with pytest.raises(InvalidTicket, match="origin"):
        adapt("generic", {**GENERIC, "origin": {"system": "github", "repo": "a/b", "number": 1}})
    with pytest.raises(InvalidTicket):
        adapt("generic", json.dumps(GENERIC))  # a JSON string is no object
    assert adapt("generic", GENERIC).source == "generic"


def test_other_events_are_not_for_us() -> None:
    assert payloads.github(GITHUB, {"x-github-event": "issue_comment"}, BOTS) is None
    assert adapt("github", edited(GITHUB, action="closed")) is None
    assert adapt("jira", edited(JIRA, webhookEvent="jira:issue_deleted")) is None
    assert adapt("zendesk", {**ZENDESK, "event": "something_else"}) is None


# -- a person's relabel ----------------------------------------------------------------------


def gh_label_event(action: str, label: str, sender: str, labels: list[str]) -> dict[str, Any]:
    payload = edited(GITHUB, action=action, sender={"login": sender})
    payload["label"] = {"name": label}
    payload["issue"]["labels"] = [{"name": n} for n in labels]
    return payload


def test_github_relabel_by_a_person_is_a_human_label() -> None:
    event = gh_label_event(
        "labeled",
        "triage:category:pin_blocked",
        "alice",
        ["bug", "triage:category:card_arrival", "triage:category:pin_blocked"],
    )
    human = adapt("github", event)
    assert isinstance(human, HumanLabel)
    assert (human.label, human.by, human.via) == ("pin_blocked", "alice", "github")
    assert human.ticket.task == "category" and human.ticket.source == "github"
    assert human.ticket.origin == GitHubIssue(repo="acme/app", number=7)


def test_github_unlabeled_takes_the_label_the_person_left() -> None:
    left_one = gh_label_event(
        "unlabeled", "triage:priority:high", "alice", ["triage:priority:low", "bug"]
    )
    human = adapt("github", left_one)
    assert isinstance(human, HumanLabel) and human.ticket.task == "priority"
    assert human.label == "low"
    # Nothing left (or several) in that task: no label was chosen.
    assert adapt("github", gh_label_event("unlabeled", "triage:priority:high", "a", [])) is None


def test_github_label_events_that_are_not_a_persons_relabel_are_ignored() -> None:
    ours = "triage:category:pin_blocked"
    assert adapt("github", gh_label_event("labeled", ours, "triage-bot", [ours])) is None
    assert adapt("github", gh_label_event("labeled", ours, "Triage-Bot", [ours])) is None
    assert adapt("github", gh_label_event("labeled", "bug", "alice", ["bug"])) is None
    assert adapt("github", gh_label_event("labeled", "triage:human", "alice", [])) is None
    assert adapt("github", gh_label_event("labeled", "triage:pin", "alice", [])) is None
    no_sender = gh_label_event("labeled", ours, "alice", [ours])
    del no_sender["sender"]
    assert adapt("github", no_sender) is None
    # Without the bot's login, no label change can be told apart from ours: all ignored.
    unset = ProducerSettings()
    assert adapt("github", gh_label_event("labeled", ours, "alice", [ours]), unset) is None


def jira_label_event(user: str, before: str, after: str, **extra: Any) -> dict[str, Any]:
    item = {"field": "labels", "fromString": before, "toString": after}
    payload = {
        **JIRA,
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": user},
        "changelog": {"items": [item, *extra.get("more", [])]},
    }
    return payload


def test_jira_changelog_by_another_account_is_a_human_label() -> None:
    human = adapt(
        "jira",
        jira_label_event(
            "alice-account",
            "backend triage:category:card_arrival",
            "backend triage:category:pin_blocked",
        ),
    )
    assert isinstance(human, HumanLabel)
    assert (human.label, human.by, human.via) == ("pin_blocked", "alice-account", "jira")
    assert human.ticket.origin == JiraIssue(key="OPS-1") and human.ticket.task == "category"
    # Removed only: the one left in that task's namespace.
    removed = jira_label_event(
        "alice-account", "triage:priority:high triage:priority:low", "triage:priority:low"
    )
    assert adapt("jira", removed).label == "low"


def test_jira_label_changes_that_are_not_a_persons_relabel_are_ignored() -> None:
    ours = jira_label_event("bot-account", "", "triage:category:pin_blocked")
    assert adapt("jira", ours) is None
    outside = jira_label_event("alice-account", "backend", "backend frontend")
    assert adapt("jira", outside) is None
    assert (
        adapt(
            "jira", jira_label_event("alice-account", "", "triage:category:x"), ProducerSettings()
        )
        is None
    )
    # Labels and other fields changed by a person, none of ours: a new revision to classify.
    mixed = jira_label_event("alice-account", "", "frontend", more=[{"field": "summary"}])
    assert isinstance(adapt("jira", mixed), Ticket)


def zendesk_relabel(updater: Any, tags: str, task: str = "category") -> dict[str, Any]:
    return {
        "event": "tags_changed",
        "task": task,
        "updater": {"id": updater},
        "ticket": {**ZENDESK["ticket"], "tags": tags},
    }


def test_zendesk_tag_change_by_an_agent_is_a_human_label() -> None:
    human = adapt(
        "zendesk", zendesk_relabel(17, "vip triage:category:pin_blocked triage:priority:high")
    )
    assert isinstance(human, HumanLabel)
    assert (human.label, human.by, human.via) == ("pin_blocked", "17", "zendesk")
    assert human.ticket.origin == ZendeskTicket(id=123) and human.ticket.task == "category"
    prio = adapt("zendesk", zendesk_relabel("17", "triage:priority:high", task="priority"))
    assert prio.label == "high" and prio.ticket.task == "priority"


def test_zendesk_tag_changes_that_are_not_a_persons_relabel_are_ignored() -> None:
    assert adapt("zendesk", zendesk_relabel(900, "triage:category:pin_blocked")) is None
    assert adapt("zendesk", zendesk_relabel("900", "triage:category:pin_blocked")) is None
    assert adapt("zendesk", zendesk_relabel(17, "vip other")) is None
    two = "triage:category:pin_blocked triage:category:card_arrival"
    assert adapt("zendesk", zendesk_relabel(17, two)) is None
    unset = ProducerSettings()
    assert adapt("zendesk", zendesk_relabel(17, "triage:category:pin_blocked"), unset) is None
    for bad in ({"id": [1]}, {"id": 2**70}, None):
        payload = zendesk_relabel(17, "triage:category:pin_blocked")
        payload["updater"] = bad
        with pytest.raises(InvalidTicket):
            adapt("zendesk", payload)
    with pytest.raises(InvalidTicket):
        adapt("zendesk", zendesk_relabel(17, "triage:category:x", task="no:colons"))


# -- no exception but InvalidTicket, whatever the JSON ---------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "action",
        "issue",
        "number",
        "title",
        "body",
        "labels",
        "name",
        "updated_at",
        "repository",
        "full_name",
        "sender",
        "login",
        "label",
        "ticket",
        "id",
        "subject",
        "description",
        "tags",
        "event",
        "task",
        "updater",
        "webhookEvent",
        "user",
        "accountId",
        "key",
        "fields",
        "summary",
        "updated",
        "changelog",
        "items",
        "field",
        "fromString",
        "toString",
        "origin",
        "content",
        "text",
        "metadata",
        "source",
        "revision",
    ]
)


def mutate(payload: Any, data: st.DataObject) -> Any:
    """A known-good payload with one value, at any depth, replaced by arbitrary JSON (or a key
    our adapters read added there)."""
    out = copy.deepcopy(payload)
    node = out
    while True:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        containers = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
        if not containers or data.draw(st.booleans()):
            break
        _, node = data.draw(st.sampled_from(containers))
    if isinstance(node, dict):
        key = data.draw(st.sampled_from(list(node)) | KEYS) if node else data.draw(KEYS)
        node[key] = data.draw(JSON)
    elif node:
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(JSON)
    return out


BASES = [
    ("github", GITHUB),
    ("github", gh_label_event("labeled", "triage:category:a", "alice", ["triage:category:a"])),
    ("zendesk", ZENDESK),
    ("zendesk", zendesk_relabel(17, "triage:category:a")),
    ("jira", JIRA),
    ("jira", jira_label_event("alice-account", "", "triage:category:a")),
    ("generic", GENERIC),
]


def _holds(source: str, payload: Any) -> None:
    try:
        out = adapt(source, payload)
    except InvalidTicket:
        return
    assert out is None or isinstance(out, Ticket | HumanLabel)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BASES), st.data())
def test_any_mutation_of_a_real_payload_is_a_ticket_a_label_none_or_invalid(base, data) -> None:
    source, payload = base
    _holds(source, mutate(payload, data))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(payloads.ADAPTERS)), JSON)
def test_arbitrary_json_is_a_ticket_a_label_none_or_invalid(source, payload) -> None:
    _holds(source, payload)
