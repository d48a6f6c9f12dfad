"""What the desk's tests share: a label set, reviewers' tokens, tickets and results on the desk
at chosen times, and signing in through the real form."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.feedback import HumanLabel
from producer.http.settings import HttpSettings
from producer.schemas import GitHubIssue, Neighbour, StageTrace, Ticket, TriageResult

LABELS = [
    "card_arrival",
    "card_not_working",
    "lost_or_stolen_card",
    "pin_blocked",
    "exchange_rate",
    "cash_withdrawal_charge",
    "top_up_failed",
    "refund_not_showing_up",
    "transfer_timing",
    "wrong_amount_of_cash_received",
    "virtual_card_not_working",
]
if TYPE_CHECKING:
    from producer.ledger import Ledger

ANN, BOB, NARROW, PLAIN = "tok-ann-review", "tok-bob-review", "tok-narrow-review", "tok-plain"
TOKENS: list[Any] = [
    {"token": ANN, "name": "ann", "review": ["*", "github"], "feedback": ["*"]},
    {"token": BOB, "name": "bob", "review": ["*", "github"]},
    {"token": NARROW, "name": "nora", "review": ["helpdesk"]},
    PLAIN,
]


def label_file(where: Path) -> Path:
    path = where / "category.json"
    path.write_text(
        json.dumps(
            {
                "task": "category",
                "labels": [
                    {"name": n, "description": n.replace("_", " ").capitalize()} for n in LABELS
                ],
            }
        )
    )
    return path


def desk_settings(tmp_path: Path, **extra: Any) -> HttpSettings:
    fields: dict[str, Any] = {
        "api_tokens": TOKENS,
        "webhook_sources": [],
        "labels": {"category": label_file(tmp_path)},
        "adapters": {"category": tmp_path / "adapter"},
        **extra,
    }
    return HttpSettings(**fields)


def ticket(
    ticket_id: str, *, source: str = "helpdesk", subject: str = "", body: str = "", **kw: Any
) -> Ticket:
    return Ticket(
        id=ticket_id,
        source=source,
        subject=subject or f"subject {ticket_id}",
        body=body or f"body of {ticket_id}",
        revision="1",
        **kw,
    )


def github_ticket(number: int, subject: str, body: str) -> Ticket:
    return Ticket(
        id=f"acme/app#{number}",
        source="github",
        subject=subject,
        body=body,
        revision="2026-05-01T10:00:00Z",
        origin=GitHubIssue(repo="acme/app", number=number),
    )


def unsure(
    t: Ticket,
    top: list[tuple[str, float]],
    *,
    ago_min: float = 0,
    reason: str | None = None,
    frontier: str | None = None,
    neighbours: list[Neighbour] | None = None,
    adapter: str = "category@abc123",
) -> TriageResult:
    """A `needs_review` result for `t`, decided `ago_min` minutes ago, with `top` as the
    cascade's three best labels (the ledger keeps them as suggestions)."""
    trace = [
        StageTrace(stage="classifier", label=top[0][0], confidence=top[0][1], latency_ms=3.0),
        StageTrace(
            stage="cascade",
            label=top[0][0],
            confidence=top[0][1],
            latency_ms=0.1,
            detail={"top": [[label, conf] for label, conf in top]},
        ),
    ]
    if frontier is not None:
        trace.append(
            StageTrace(
                stage="frontier",
                label=frontier,
                confidence=0.7,
                latency_ms=800.0,
                cost_usd=0.001,
                detail={"model": "claude-test"},
            )
        )
    return TriageResult(
        ticket_id=t.id,
        source=t.source,
        task=t.task,
        revision=t.effective_revision,
        label=top[0][0],
        confidence=top[0][1],
        decided_by="frontier" if frontier else "classifier",
        status="needs_review",
        reason=reason,
        evidence=neighbours or [],
        trace=trace,
        versions={"adapter": adapter, "base": "all-MiniLM-L6-v2"},
        decided_at=datetime.now(UTC) - timedelta(minutes=ago_min),
    )


def auto(t: Ticket, label: str, *, at: datetime, adapter: str = "category@abc123") -> TriageResult:
    """A model's auto label for `t`, decided at `at`."""
    return TriageResult(
        ticket_id=t.id,
        source=t.source,
        task=t.task,
        revision=t.effective_revision,
        label=label,
        confidence=0.97,
        decided_by="classifier",
        status="labelled",
        trace=[StageTrace(stage="classifier", label=label, confidence=0.97, latency_ms=2.0)],
        versions={"adapter": adapter},
        decided_at=at,
    )


def sign_in(client: Any, token: str, next_path: str = "") -> Any:
    """Sign in through the real form; the response to the POST (a 303 when it worked)."""
    page = client.get("/review/login" + (f"?next={next_path}" if next_path else ""))
    return client.post(
        "/review/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": next_path},
        follow_redirects=False,
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]


def audits(
    ledger: Ledger, right: int, wrong: int, *, days: int = 3, adapter: str = "category@abc123"
) -> None:
    """`right + wrong` audited auto labels over the last `days` days, answered on the desk
    (the wrong ones corrected to lost_or_stolen_card, a person's label as well)."""
    now = datetime.now(UTC)
    for n in range(right + wrong):
        t = ticket(f"a{n}", subject=f"audited ticket {n}")
        at = now - timedelta(days=n % days, minutes=5 + n)
        assert ledger.open_audit(t, auto(t, "card_arrival", at=at, adapter=adapter))
        [item] = [e.item for e in ledger.queue("category", limit=500) if e.item.ticket_id == t.id]
        assert ledger.claim(item.id, "ann")
        answer = "card_arrival" if n < right else "lost_or_stolen_card"
        assert ledger.resolve(item.id, "ann", answer)
        if answer != "card_arrival":
            human = HumanLabel(ticket=t, label=answer, by="ann", via="review", at=at)
            ledger.record([human.as_writeback()])


def policy(where: Path, precision: float | None) -> None:
    """A tuned policy.json in adapter folder `where`, aimed at `precision` (None: at an
    escalation cap instead)."""
    where.mkdir(exist_ok=True)
    target = {"precision": precision, "max_escalation": None if precision else 0.2}
    (where / "policy.json").write_text(json.dumps({"tuning": {"target": target}}))
