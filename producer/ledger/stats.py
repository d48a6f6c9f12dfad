"""Quality in production over a window: coverage, audited precision with its 95% interval,
corrections, the desk's depth and age, and the labels people change most."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.engine import Connection

from producer.ledger.records import Confusion, Interval, Stats, VersionStats
from producer.ledger.tables import DecisionRow, HumanLabelRow, ReviewItemRow

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054
D, H, R = DecisionRow, HumanLabelRow, ReviewItemRow


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """The share `successes / trials` with its Wilson score interval (sound near 0 and 1, and
    for the few dozen audits a day a small desk gives, where the normal interval is not)."""
    if trials <= 0:
        raise ValueError("a proportion needs at least one trial")
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    return Interval(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half))


def stats(
    conn: Connection, task: str, *, since: datetime, until: datetime, now: datetime, top: int
) -> Stats:
    """`Ledger.stats`: model decisions made in [since, until) and people's labels given then."""
    in_window = (D.task == task, D.decided_at >= since, D.decided_at < until)
    auto = and_(D.status == "labelled", D.decided_by != "human")
    decided = _by_version(
        conn,
        select(D.adapter_version, func.count(), func.sum(case((auto, 1), else_=0)))
        .where(*in_window, D.decided_by != "human")
        .group_by(D.adapter_version),
    )
    # An audit is answered by the desk or by any person's label for the ticket (`record`).
    audited = _by_version(
        conn,
        select(
            D.adapter_version, func.count(), func.sum(case((R.answer_label == D.label, 1), else_=0))
        )
        .join(R, _same_decision())
        .where(*in_window, R.kind == "audit", R.state == "resolved")
        .group_by(D.adapter_version),
    )
    # Corrected: a person later gave the ticket another label, through any channel.
    later_other = and_(
        H.task == D.task,
        H.source == D.source,
        H.ticket_id == D.ticket_id,
        H.labelled_at >= D.decided_at,
        H.label != D.label,
    )
    corrected = _by_version(
        conn,
        select(D.adapter_version, func.count(func.distinct(D.id)))
        .join(H, later_other)
        .where(*in_window, auto)
        .group_by(D.adapter_version),
    )
    depth, oldest = conn.execute(
        select(func.count(), func.min(R.created_at)).where(
            R.task == task, R.state.in_(("open", "claimed"))
        )
    ).one()
    return Stats(
        task=task,
        since=since,
        until=until,
        versions=[
            _version(version, decided.get(version), audited.get(version), corrected.get(version))
            for version in sorted(decided.keys() | audited.keys(), key=lambda v: (v is None, v))
        ],
        queue_depth=int(depth),
        oldest_age_s=_age_s(oldest, now),
        confusions=_confusions(conn, task, since, until, top),
    )


def _version(
    version: str | None,
    decided: tuple[int, ...] | None,
    audited: tuple[int, ...] | None,
    corrected: tuple[int, ...] | None,
) -> VersionStats:
    decisions, auto = decided or (0, 0)
    n_audited, correct = audited or (0, 0)
    (n_corrected,) = corrected or (0,)
    return VersionStats(
        adapter_version=version,
        decisions=decisions,
        auto=auto,
        coverage=auto / decisions if decisions else 0.0,
        audited=n_audited,
        audit_correct=correct,
        precision=wilson(correct, n_audited) if n_audited else None,
        corrected=n_corrected,
        correction_rate=n_corrected / auto if auto else 0.0,
    )


def _confusions(
    conn: Connection, task: str, since: datetime, until: datetime, top: int
) -> list[Confusion]:
    n = func.count().label("n")
    stmt = (
        select(H.model_label, H.label, n)
        .where(
            H.task == task,
            H.labelled_at >= since,
            H.labelled_at < until,
            H.model_label.is_not(None),
            H.model_label != H.label,
        )
        .group_by(H.model_label, H.label)
        .order_by(n.desc(), H.model_label, H.label)
        .limit(top)
    )
    return [Confusion(str(m), h, int(count)) for m, h, count in conn.execute(stmt)]


def _by_version(
    conn: Connection, stmt: Select[*tuple[Any, ...]]
) -> dict[str | None, tuple[int, ...]]:
    return {row[0]: tuple(int(v or 0) for v in row[1:]) for row in conn.execute(stmt)}


def _same_decision() -> ColumnElement[bool]:
    return and_(
        R.task == D.task, R.source == D.source, R.ticket_id == D.ticket_id, R.revision == D.revision
    )


def _age_s(oldest: datetime | None, now: datetime) -> float | None:
    if oldest is None:
        return None
    return max(0.0, (now - oldest).total_seconds())
