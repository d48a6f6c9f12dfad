"""The delivery settings as Celery and kombu will read them, their checks, and the write-back
lease that keeps two runs of one ticket revision from writing at once."""

from __future__ import annotations

import threading

import pytest
import redis
from pydantic import ValidationError

from producer import Ticket
from producer.names import written_key
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from worker import settings as worker_settings
from worker.app import app, broker_options
from worker.settings import WorkerSettings, soft_limit_s
from worker.writeback.done import WriteInProgress
from worker.writeback.path import write_back_one


def test_the_visibility_timeout_is_set_everywhere_celery_reads_it() -> None:
    vt = worker_settings.get_settings().visibility_timeout_s
    assert app.conf.broker_transport_options["visibility_timeout"] == vt
    assert app.conf.result_backend_transport_options["visibility_timeout"] == vt
    assert app.conf.visibility_timeout == vt
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_publish_retry_policy["max_retries"] >= 30


def test_expired_messages_are_looked_for_about_twenty_times_per_timeout() -> None:
    short = broker_options(WorkerSettings(visibility_timeout_s=100, **LIMITS_10_S))
    assert (short["unacked_restore_interval"], short["unacked_restore_throttle"]) == (5, 1)
    assert broker_options(WorkerSettings())["unacked_restore_interval"] == 60


LIMITS_10_S = {
    "classify_time_limit_s": 10,
    "escalate_time_limit_s": 10,
    "writeback_time_limit_s": 10,
    "retry_backoff_max_s": 5,
    "callback_timeout_s": 5,
    "source_timeout_s": 5,
}


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"visibility_timeout_s": 20}, "longest task time limit"),
        ({"visibility_timeout_s": 60, "retry_backoff_max_s": 30}, "RETRY_BACKOFF_MAX_S"),
        ({"visibility_timeout_s": 60, "callback_timeout_s": 10}, "WRITEBACK_TIME_LIMIT_S"),
    ],
)
def test_settings_that_would_run_a_task_twice_stop_the_start(values, names) -> None:
    with pytest.raises(ValidationError, match=names):
        WorkerSettings(**{**LIMITS_10_S, **values})


def test_soft_limits_come_before_the_hard_ones() -> None:
    assert soft_limit_s(300) == 290 and soft_limit_s(4) == pytest.approx(3.2)


@pytest.fixture
def lease_settings(worker_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s")  # `worker_env` allows the local receiver
    worker_settings.get_settings.cache_clear()
    yield
    worker_settings.get_settings.cache_clear()


def test_a_second_run_waits_for_the_lease_then_finds_the_work_done(
    rdb: redis.Redis, lease_settings: None
) -> None:
    with CallbackReceiver() as receiver:
        receiver.delay_s = 0.5  # the first run is inside its callback...
        t = Ticket(id="1", body="x", revision="r1", callback=receiver.url)  # type: ignore[arg-type]
        first = threading.Thread(target=write_back_one, args=(t, result_for(t, "a"), []))
        first.start()
        while not receiver.calls:
            threading.Event().wait(0.01)
        with pytest.raises(WriteInProgress) as busy:  # ...when the second one starts
            write_back_one(t, result_for(t, "a"), [])
        first.join()
        again = write_back_one(t, result_for(t, "a"), [])
        calls = len(receiver.calls)
    assert 0 < (busy.value.retry_after_s or 0) <= worker_settings.get_settings().writeback_lease_s
    assert calls == 1 and again["callback"] == "http 200"
    key = written_key("category", "api", "1", "r1")
    assert not rdb.exists(key + ":lease"), "the lease outlived its run"


def test_a_run_that_lost_its_lease_stops_before_the_next_sink(
    rdb: redis.Redis, lease_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if this run was paused past its lease during the event step, and another took over.
    from worker.writeback.targets.event import Event

    lease = written_key("category", "api", "2", "r1") + ":lease"
    original = Event.write

    def write(self: Event, r: redis.Redis, todo: list, deadline: float) -> None:
        original(self, r, todo, deadline)
        rdb.set(lease, "another run")

    monkeypatch.setattr(Event, "write", write)
    with CallbackReceiver() as receiver:
        t = Ticket(id="2", body="x", revision="r1", callback=receiver.url)  # type: ignore[arg-type]
        with pytest.raises(WriteInProgress):
            write_back_one(t, result_for(t, "a"), [])
        assert receiver.calls == []
    assert rdb.get(lease) == "another run", "a run released a lease that was not its own"
