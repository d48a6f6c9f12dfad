"""ticket-triage's light side: the contract and the client an existing app installs.

    from producer import Ticket, enqueue
    enqueue(Ticket(id="42", subject="Card not arrived", body="..."))

Importing this package never imports torch, transformers, Celery or the worker.
"""

from producer.client import aenqueue, aenqueue_many, enqueue, enqueue_many
from producer.errors import (
    BrokerUnavailable,
    InvalidTicket,
    PermanentError,
    QueueFull,
    RetryableError,
    TriageError,
)
from producer.labelset import Label, LabelSet
from producer.results import get_result
from producer.schemas import Neighbour, StageTrace, Ticket, TriageResult

__all__ = [
    "BrokerUnavailable",
    "InvalidTicket",
    "Label",
    "LabelSet",
    "Neighbour",
    "PermanentError",
    "QueueFull",
    "RetryableError",
    "StageTrace",
    "Ticket",
    "TriageError",
    "TriageResult",
    "aenqueue",
    "aenqueue_many",
    "enqueue",
    "enqueue_many",
    "get_result",
]
