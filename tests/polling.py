"""One way for a test to wait: poll a condition until it holds, or fail saying what it waited for.

A poll with no deadline shows a failure only as pytest's 300 s timeout, with no word of what was
missing; every wait in the tests goes through `wait_for` instead::

    result = wait_for(lambda: get_result("t1"), timeout_s=60, what="a result for t1")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str | Callable[[], str],
    interval_s: float = 0.05,
) -> T:
    """Call `condition` every `interval_s` until it returns something truthy, and return that.

    After `timeout_s` without, raise AssertionError("waited {timeout_s}s for {what}"); `what` may
    be a callable, asked only then, to say what was there instead (counts, a log's tail). The
    condition is always tried once more after the deadline, so a slow last poll does not fail.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        expired = time.monotonic() >= deadline
        if value := condition():
            return value
        if expired:
            raise AssertionError(f"waited {timeout_s}s for {what() if callable(what) else what}")
        time.sleep(interval_s)
