"""The ledger's errors, in the service's one hierarchy (`producer.errors`)."""

from __future__ import annotations

from producer.errors import PermanentError, RetryableError


class LedgerUnavailable(RetryableError):
    """The database did not answer, was locked past the busy timeout, or chose this
    transaction as a deadlock's victim: the same call may succeed later."""


class LedgerError(PermanentError):
    """The ledger cannot be used as it is (an unknown or unmigrated schema, a bad URL)."""
