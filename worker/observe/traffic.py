"""Recent traffic of one label task, read back for `triage drift`.

The write-back appends one event per result to the stream (`triage:events`, newest last); the
result store keeps each ticket's latest `TriageResult` with its trace, where the classifier's own
label and calibrated confidence are (the event carries the final ones, and a frontier's or a
human's label says nothing about the classifier). Human labels come from the ledger, the store of
record, which the caller reads (`producer.ledger`: every person's label from any channel, kept
for good); and from Redis: the feedback stream (`triage:feedback`), the human results in the
event stream and, for feedback recorded before that stream existed, a JSON-lines file
(deprecated), which cover a ledger that was started after them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from models.drift import Traffic, confidence_histogram
from producer.errors import BrokerUnavailable
from producer.names import EVENTS_STREAM, FEEDBACK_STREAM, result_key
from producer.schemas import TriageResult

_PAGE = 1000
_FIRST_PASS = {"classifier", "retrieval"}


@dataclass(frozen=True)
class _Seen:
    source: str
    ticket_id: str
    label: str
    confidence: float
    decided_by: str
    status: str


def recent_traffic(
    client: redis.Redis,
    task: str,
    *,
    limit: int,
    feedback_path: Path | None = None,
    recorded: Mapping[tuple[str, str], str] | None = None,
) -> Traffic:
    """The last `limit` model results of `task` in the event stream, with human corrections:
    `recorded` (each ticket's latest person's label in the ledger, by (source, id)), which wins,
    and the feedback stream's (`feedback_path`: a legacy JSON-lines file's too, read first)."""
    human: dict[tuple[str, str], str] = {}
    if feedback_path is not None:
        human.update(_feedback(feedback_path, task))
    try:
        model, from_events = _read_events(client, task, limit)
        human.update(from_events)
        human.update(_feedback_stream(client, task))
        classifier = _classifier_view(client, task, model)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
    human.update(recorded or {})
    labels: Counter[str] = Counter()
    confidences = []
    for seen in model:
        label, confidence = classifier.get(
            (seen.source, seen.ticket_id), (seen.label, seen.confidence)
        )
        if label:
            labels[label] += 1
        confidences.append(confidence)
    model_label = {(s.source, s.ticket_id): s.label for s in model if s.status == "labelled"}
    reviewed = [key for key in human if key in model_label]
    return Traffic(
        tickets=len(model),
        labels=dict(labels),
        confidence=confidence_histogram(confidences),
        escalated=sum(s.decided_by not in _FIRST_PASS for s in model),
        needs_review=sum(s.status == "needs_review" for s in model),
        reviewed=len(reviewed),
        corrected=sum(human[key] != model_label[key] for key in reviewed),
    )


def _read_events(
    client: redis.Redis, task: str, limit: int
) -> tuple[list[_Seen], dict[tuple[str, str], str]]:
    """Model results (newest first) and human labels by (source, ticket id), from the stream."""
    model: list[_Seen] = []
    human: dict[tuple[str, str], str] = {}
    newest_seen = "+"
    while len(model) < limit:
        # The producer's client decodes responses: ids and fields are str.
        page: list[tuple[str, dict[str, str]]] = client.xrevrange(  # type: ignore[assignment]
            EVENTS_STREAM, max=newest_seen, count=_PAGE
        )
        if newest_seen != "+":
            page = page[1:]  # the range is inclusive: the first entry was read already
        if not page:
            break
        for _event_id, fields in page:
            if fields.get("task") != task:
                continue
            key = (fields.get("source", ""), fields.get("ticket_id", ""))
            if fields.get("decided_by") == "human":
                human.setdefault(key, fields.get("label", ""))  # the newest human label wins
            elif len(model) < limit:
                model.append(
                    _Seen(
                        source=key[0],
                        ticket_id=key[1],
                        label=fields.get("label", ""),
                        confidence=float(fields.get("confidence") or 0.0),
                        decided_by=fields.get("decided_by", ""),
                        status=fields.get("status", ""),
                    )
                )
        newest_seen = page[-1][0]
    return model, human


def _classifier_view(
    client: redis.Redis, task: str, seen: list[_Seen]
) -> dict[tuple[str, str], tuple[str, float]]:
    """The classifier stage's (label, confidence) per ticket, from the stored results' traces."""
    out: dict[tuple[str, str], tuple[str, float]] = {}
    for start in range(0, len(seen), _PAGE):
        chunk = seen[start : start + _PAGE]
        raws = client.mget([result_key(task, s.source, s.ticket_id) for s in chunk])
        for s, raw in zip(chunk, raws, strict=True):
            if raw is None:
                continue  # expired or never stored: the event's own figures stand in
            result = TriageResult.model_validate_json(raw)
            for stage in result.trace:
                if stage.stage == "classifier" and stage.label:
                    out[(s.source, s.ticket_id)] = (stage.label, stage.confidence)
    return out


def _feedback_stream(client: redis.Redis, task: str) -> dict[tuple[str, str], str]:
    """Human labels of `task` from the feedback stream, oldest first: the newest wins."""
    out: dict[tuple[str, str], str] = {}
    after = "-"
    while True:
        page: list[tuple[str, dict[str, str]]] = client.xrange(  # type: ignore[assignment]
            FEEDBACK_STREAM, min=after, count=_PAGE
        )
        if after != "-":
            page = page[1:]  # the range is inclusive: the first entry was read already
        if not page:
            return out
        for _entry_id, fields in page:
            if fields.get("task") == task and fields.get("label"):
                out[(fields.get("source", ""), fields.get("ticket_id", ""))] = fields["label"]
        after = page[-1][0]


def _feedback(path: Path, task: str) -> dict[tuple[str, str], str]:
    """Human labels from a feedback file (JSON lines the HTTP app appended before the feedback
    stream); last wins. Deprecated: kept for feedback given before the stream existed."""
    if not path.is_file():
        return {}
    out: dict[tuple[str, str], str] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash mid-append
            if isinstance(row, dict) and row.get("task", "category") == task and row.get("label"):
                out[(str(row.get("source", "api")), str(row.get("ticket_id")))] = str(row["label"])
    return out
