"""Whether a result may be applied at all: a person's label wins, and an older revision never
replaces a newer one (docs/security.md, "Feedback and people's labels").

One Lua script per ticket and target step (`GATE`, run by `done.hold_and_check`) takes or renews
the revision's lease, asks whether the target is done, and decides against the ticket's label
state (`producer.names.label_key`), atomically:

- a human result applies unless a later human label was applied already (``stale-revision``);
- a model result for a ticket a person labelled is ``kept-human-label``;
- a model result older than the newest applied revision is ``stale-revision``: revisions that
  parse as timestamps compare as times, numeric ones as numbers, others by the tickets'
  ``created_at``;
- anything else applies, and moves the label state forward.

The decision is recorded in the revision's ``written`` hash: a retried or redelivered run sees
the same ``kept-human-label`` or ``stale-revision``, whatever happened since. An ``apply`` is
asked again before each target, so a result overtaken between two targets (a person labelled
the ticket while its callback was retried) is applied in none of the targets left.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

APPLY = "apply"
KEPT_HUMAN_LABEL = "kept-human-label"
STALE_REVISION = "stale-revision"
#: The field of the ``written`` hash that holds the decision (it names no target).
DECISION_FIELD = "decision"

_NUMBER = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")
#: Seconds since the epoch shifted so every year from 1 to 9999 is positive, in microseconds.
_EPOCH_SHIFT_US = 10**17

# KEYS: lease, written hash, label state.
# ARGV: token, lease ttl, target, human ("1"/"0"), revision kind, revision key, created key,
#       human label time key, labelled_by, label, written ttl, revision.
# Returns {0, lease ms left, ""} when another run holds the lease, else {1, done, decision}.
# Keys are fixed-width digit strings: compared as strings, they compare as numbers.
GATE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return {0, redis.call('PTTL', KEYS[1]), ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local done = redis.call('HEXISTS', KEYS[2], ARGV[3])
local decision = redis.call('HGET', KEYS[2], 'decision')
if decision and decision ~= 'apply' then return {1, done, decision} end
local s = redis.call('HMGET', KEYS[3], 'human_at', 'kind', 'key', 'created')
decision = 'apply'
if ARGV[4] == '1' then
  if s[1] and ARGV[8] < s[1] then decision = 'stale-revision' end
elseif s[1] then
  decision = 'kept-human-label'
elseif s[2] then
  local older
  if s[2] == ARGV[5] and ARGV[5] ~= 's' then older = ARGV[6] < s[3] else older = ARGV[7] < s[4] end
  if older then decision = 'stale-revision' end
end
if decision == 'apply' then
  if ARGV[4] == '1' then
    redis.call('HSET', KEYS[3], 'human_at', ARGV[8], 'labelled_by', ARGV[9], 'label', ARGV[10],
      'human_revision', ARGV[12])
  else
    redis.call('HSET', KEYS[3], 'kind', ARGV[5], 'key', ARGV[6], 'created', ARGV[7],
      'revision', ARGV[12])
  end
end
redis.call('HSET', KEYS[2], 'decision', decision)
redis.call('EXPIRE', KEYS[2], ARGV[11])
return {1, done, decision}
"""


def revision_order(revision: str) -> tuple[str, str]:
    """How `revision` sorts: ``("n", key)`` for a number, ``("t", key)`` for a timestamp (a
    naive one is UTC), ``("s", "")`` for anything else (then the tickets' ``created_at`` decide)."""
    if (number := _NUMBER.match(revision)) is not None:
        whole = number.group(1).lstrip("0") or "0"
        fraction = (number.group(2) or "").rstrip("0")
        return "n", f"{len(whole):04d}{whole}{fraction}"
    try:
        return "t", time_order(datetime.fromisoformat(revision))
    except ValueError:
        return "s", ""


def time_order(at: datetime) -> str:
    """`at` as a fixed-width digit string that sorts as the time does."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros + _EPOCH_SHIFT_US:020d}"
