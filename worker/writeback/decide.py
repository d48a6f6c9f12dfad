"""Whether a result may be applied at all: a person's label wins, and an older revision never
replaces a newer one (docs/security.md, "Feedback and people's labels").

One Lua script call per target step for a whole batch (`GATE`, run by `done.hold_and_check`)
takes or renews each revision's lease, asks whether the target is done, and decides against the
ticket's label state (`producer.names.label_key`), atomically:

- a human result applies unless a later human label was applied already (``stale-revision``);
- a model result for a ticket a person labelled is ``kept-human-label``;
- a model result older than the newest applied revision is ``stale-revision``: revisions that
  parse as timestamps compare as times, numeric ones as numbers, others by the tickets'
  ``created_at``;
- anything else applies, and moves the label state forward.

The decision is recorded in the revision's ``written`` hash: a retried or redelivered run sees
the same ``kept-human-label`` or ``stale-revision``, whatever happened since. An ``apply`` is
asked again before each target that may act (`worker.writeback.path`), so a result overtaken
between two targets (a person labelled the ticket while its callback was retried) is applied in
none of the targets left.
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

# One call per target step for a whole batch (`done.hold_and_check`).
# KEYS: each ticket's lease, written hash and label state, in turn.
# ARGV: token, lease ttl, written ttl, the target to gate ('' once the run is over), and a JSON
#       array with one array per ticket: the outcomes to record (an object, target -> outcome),
#       then, when gating: human ("1"/"0"), revision kind, revision key, created key, human
#       label time key, labelled_by, label, revision.
# The outcomes are recorded first, whatever else happens: their side effects have happened. A
# target recorded before (by a run that lost its lease meanwhile) keeps its first outcome.
# Returns, as a JSON array (one string parses faster than nested replies), per ticket
# [0, lease ms left, ""] when another run holds the lease, else [1, done, decision]; once the
# run is over, an empty string, and the leases still ours are released.
# Keys are fixed-width digit strings: compared as strings, they compare as numbers.
GATE = """
local token, ttl, written_ttl, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local function gate(lease, written, state, t)
  local cur = redis.call('GET', lease)
  if cur and cur ~= token then return {0, redis.call('PTTL', lease), ''} end
  redis.call('SET', lease, token, 'EX', ttl)
  local done = redis.call('HEXISTS', written, target)
  local decision = redis.call('HGET', written, 'decision')
  if decision and decision ~= 'apply' then return {1, done, decision} end
  local s = redis.call('HMGET', state, 'human_at', 'kind', 'key', 'created')
  decision = 'apply'
  if t[2] == '1' then
    if s[1] and t[6] < s[1] then decision = 'stale-revision' end
  elseif s[1] then
    decision = 'kept-human-label'
  elseif s[2] then
    local older
    if s[2] == t[3] and t[3] ~= 's' then older = t[4] < s[3] else older = t[5] < s[4] end
    if older then decision = 'stale-revision' end
  end
  if decision == 'apply' then
    if t[2] == '1' then
      redis.call('HSET', state, 'human_at', t[6], 'labelled_by', t[7], 'label', t[8],
        'human_revision', t[9])
    else
      redis.call('HSET', state, 'kind', t[3], 'key', t[4], 'created', t[5], 'revision', t[9])
    end
  end
  redis.call('HSET', written, 'decision', decision)
  redis.call('EXPIRE', written, written_ttl)
  return {1, done, decision}
end

local verdicts = {}
for i, t in ipairs(cjson.decode(ARGV[5])) do
  local lease, written = KEYS[3 * i - 2], KEYS[3 * i - 1]
  for name, outcome in pairs(t[1]) do redis.call('HSETNX', written, name, outcome) end
  if target ~= '' then
    verdicts[i] = gate(lease, written, KEYS[3 * i], t)
  elseif redis.call('GET', lease) == token then
    redis.call('DEL', lease)
  end
end
if target == '' then return '' end
return cjson.encode(verdicts)
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
