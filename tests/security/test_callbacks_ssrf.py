"""Callbacks cannot be aimed inside (docs/security.md, "Callbacks"): refused at intake (422,
exit 2, nothing queued) and again at send time against the address actually connected to, with
a real Redis, the real write-back path and a real local receiver. Names are resolved for real
where a real name exists offline (``localhost``, literal addresses); a name that must resolve
elsewhere (a compose service, a rebinding attacker's) is answered by `socket.getaddrinfo`
itself, patched, never by patching our own functions."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from pydantic import ValidationError

from producer import InvalidTicket, Ticket
from producer.callbacks import Allow, CallbackRefused, check, not_global, redact
from producer.client import asend_tickets, send_tickets
from producer.names import CLASSIFY_QUEUE, DEAD_LETTER_LIST, EVENTS_STREAM
from producer.settings import ProducerSettings
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from tests.worker.conftest import worker_env  # noqa: F401  (in-process worker settings)

# ruff: noqa: F811  (`worker_env` is imported to be used as a fixture)

PUBLIC = "93.184.216.34"  # a global address: what a rebinding name answers first


@pytest.fixture
def no_allow_list(worker_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: no allow-list, a callback secret, settings read afresh."""
    from producer import settings as producer_settings
    from worker import settings as worker_settings

    monkeypatch.delenv("TRIAGE_CALLBACK_ALLOW")
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    producer_settings.get_settings.cache_clear()
    worker_settings.get_settings.cache_clear()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[list[str]]], list[str]]:
    """`answer(name, [first, second, ...])`: `socket.getaddrinfo` answers `name` with each list
    of addresses in turn (the last one from then on); every other name resolves for real.
    Returns the log of names asked."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(name)
        turn = answers[name][0] if len(answers[name]) == 1 else answers[name].pop(0)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, int(port or 0), 0, 0) if ":" in a else (a, int(port or 0)),
            )
            for a in turn
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def answer(name: str, turns: list[list[str]]) -> list[str]:
        answers[name] = list(turns)
        return asked

    return answer


def _ticket(callback: str, ticket_id: str = "1") -> Ticket:
    return Ticket(id=ticket_id, body="my card is lost", callback=callback, revision="r1")  # type: ignore[arg-type]


def _settings(redis_url: str, allow: list[str] | None = None) -> ProducerSettings:
    return ProducerSettings(redis_url=redis_url, callback_allow=allow or [])


INTERNAL = [
    "http://127.0.0.1:6379/",
    "http://[::1]:8080/hook",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/",
    "http://172.17.0.1:2375/containers/json",
    "http://2130706433/",  # 127.0.0.1 in decimal
    "http://0x7f000001/",  # in hex
    "http://0177.0.0.1/",  # in octal
    "http://127.1/",
    "http://0.0.0.0:6333/collections",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, mapped
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://224.0.0.1/",
    "http://100.64.0.1/",  # shared address space (carrier NAT)
    "http://localhost:6379/",  # a name, resolved for real, to loopback
]


@pytest.mark.parametrize("url", INTERNAL)
def test_intake_refuses_a_callback_to_an_internal_address(rdb: redis.Redis, url: str) -> None:
    with pytest.raises(InvalidTicket) as refused:
        send_tickets([_ticket(url)], settings=_settings(_url(rdb)))
    assert [e["field"] for e in refused.value.errors] == ["callback"]
    assert rdb.llen(CLASSIFY_QUEUE) == 0, "a refused ticket was queued"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "not http or https"),
        ("http://user:hunter2@127.0.0.1/hook", "user name or password"),
        ("http://user@93.184.216.34/hook", "user name or password"),
    ],
)
def test_only_plain_http_urls_without_credentials(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused, match=why) as refused:
        check(url, Allow())
    assert "hunter2" not in str(refused.value)


def test_a_compose_service_name_resolving_to_a_private_address_is_refused(
    rdb: redis.Redis, resolver
) -> None:
    resolver("redis", [["172.18.0.3"]])
    resolver("qdrant", [["172.18.0.4", PUBLIC]])  # one private address among public ones is enough
    for url in ("http://redis:6379/", "http://qdrant:6333/collections"):
        with pytest.raises(InvalidTicket, match="private"):
            send_tickets([_ticket(url)], settings=_settings(_url(rdb)))
    assert rdb.llen(CLASSIFY_QUEUE) == 0


def test_a_public_address_and_the_allow_list_pass(rdb: redis.Redis, resolver) -> None:
    resolver("hooks.example.com", [[PUBLIC]])
    resolver("receiver.internal", [["10.1.2.3"]])
    settings = _settings(_url(rdb), ["receiver.internal", "192.168.0.0/16", "::1"])
    tickets = [
        _ticket("https://hooks.example.com/triage?token=abc", "1"),
        _ticket("http://receiver.internal:8080/hook", "2"),
        _ticket("http://192.168.7.7/hook", "3"),
        _ticket("http://[::1]:9000/hook", "4"),
    ]
    assert send_tickets(tickets, settings=settings) == [True] * 4
    with pytest.raises(InvalidTicket) as refused:  # a list names the ticket that is refused
        send_tickets([_ticket("http://10.9.9.9/", "5"), *tickets], settings=settings)
    assert refused.value.errors[0]["field"] == "[0].callback"


def test_the_allow_list_is_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_CALLBACK_ALLOW", '["10.0.0.0/8", "bad entry/x"]')
    with pytest.raises(ValidationError, match="bad entry"):
        ProducerSettings()


def test_every_spelling_of_an_internal_address_is_named() -> None:
    import ipaddress

    assert not_global(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert not_global(ipaddress.ip_address("::ffff:8.8.8.8")) == "IPv4-mapped"
    assert "carries 127.0.0.1" in str(not_global(ipaddress.ip_address("2002:7f00:1::1")))  # 6to4
    assert "carries 10.0.0.1" in str(not_global(ipaddress.ip_address("64:ff9b::a00:1")))  # NAT64
    assert not_global(ipaddress.ip_address(PUBLIC)) is None
    assert not_global(ipaddress.ip_address("2606:4700::1111")) is None


def test_async_intake_refuses_without_blocking_the_loop(rdb: redis.Redis, resolver) -> None:
    slow = socket.getaddrinfo

    def lagging(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # a slow DNS server
        return slow(*args, **kwargs)

    resolver("slow.internal", [["10.0.0.7"]])
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            with pytest.raises(InvalidTicket, match="private"):
                await asend_tickets(
                    [_ticket("http://slow.internal/hook")], settings=_settings(_url(rdb))
                )
        finally:
            ticker.cancel()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", lagging)
        asyncio.run(main())
    assert ticks >= 10, f"the event loop stalled during the lookup ({ticks} ticks in 0.3 s)"
    assert rdb.llen(CLASSIFY_QUEUE) == 0


def test_the_api_answers_422_and_the_cli_exits_2(
    rdb: redis.Redis, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from cli.main import main
    from producer import settings as producer_settings
    from producer.http import create_app
    from tests.producer.http_support import AUTH, http_settings

    body = {"id": "1", "body": "x", "callback": "http://169.254.169.254/latest/meta-data/"}
    app = create_app(http_settings(tmp_path), _settings(_url(rdb)))
    with TestClient(app) as client:
        answer = client.post("/v1/tickets", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "callback" in answer.text and "link-local" in answer.text

    monkeypatch.delenv("TRIAGE_CALLBACK_ALLOW", raising=False)
    producer_settings.get_settings.cache_clear()
    out = CliRunner().invoke(main, ["enqueue"], input=json.dumps(body))
    assert out.exit_code == 2 and "callback" in out.output, out.output
    assert rdb.llen(CLASSIFY_QUEUE) == 0


# Send time: tickets made here skip intake, as a ticket queued before this check, or by code
# with Redis credentials, would.


def test_a_callback_refused_at_send_time_is_dead_lettered_once_never_called(
    rdb: redis.Redis, no_allow_list: None
) -> None:
    from worker.tasks import _settle
    from worker.writeback.path import write_back

    with CallbackReceiver() as receiver:
        t = _ticket(receiver.url)
        decisions = [(t, result_for(t, "card_arrival"), [])]
        again = _settle(decisions, write_back(decisions))
        calls = len(receiver.calls)
    assert calls == 0 and again == [], "an internal address is not retried"
    [entry] = [json.loads(e) for e in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    assert "127.0.0.1 (loopback)" in entry["reason"] and "TRIAGE_CALLBACK_ALLOW" in entry["reason"]
    assert rdb.xlen(EVENTS_STREAM) == 1, "the targets before the callback ran once"


def test_dns_rebinding_is_refused_at_connect_time(
    rdb: redis.Redis, no_allow_list: None, resolver
) -> None:
    """The name answers a public address at intake, loopback when the worker connects."""
    from worker.tasks import _settle
    from worker.writeback.path import write_back

    with CallbackReceiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1].split("/")[0]
        asked = resolver("rebind.example", [[PUBLIC], ["127.0.0.1"]])
        t = _ticket(f"http://rebind.example:{port}/hook")
        assert send_tickets([t], settings=_settings(_url(rdb))) == [True]  # intake: public
        decisions = [(t, result_for(t, "card_arrival"), [])]
        again = _settle(decisions, write_back(decisions))
        calls = len(receiver.calls)
    assert asked == ["rebind.example", "rebind.example"]
    assert calls == 0 and again == []
    [entry] = [json.loads(e) for e in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    assert "resolves to 127.0.0.1 (loopback)" in entry["reason"]


def test_the_worker_connects_to_the_address_it_checked(
    rdb: redis.Redis, worker_env, monkeypatch: pytest.MonkeyPatch, resolver
) -> None:
    """One lookup per connection, checked, then connected to: a second answer (127.0.0.2, not
    allowed, where nothing listens) is never asked for. TLS and Host keep the name."""
    from worker.writeback.path import write_back_one

    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    with CallbackReceiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1].split("/")[0]
        asked = resolver("pinned.example", [["127.0.0.1"], ["127.0.0.2"]])
        t = _ticket(f"http://pinned.example:{port}/hook")
        done = write_back_one(t, result_for(t, "card_arrival"), [])
        [call] = receiver.calls
    assert done["callback"] == "http 200" and asked == ["pinned.example"]
    assert call.headers["host"] == f"pinned.example:{port}"


class _Answering:
    """A local server that answers every POST with `status`, `headers` and `body`."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.hits.append(self.path)
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def answering() -> Iterator[Callable[..., _Answering]]:
    servers: list[_Answering] = []

    def start(*args: Any, **kwargs: Any) -> _Answering:
        servers.append(_Answering(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_credentials_queries_and_bodies_stay_out_of_reasons_and_logs(
    rdb: redis.Redis, worker_env, monkeypatch: pytest.MonkeyPatch, answering, caplog
) -> None:
    from worker.tasks import _settle
    from worker.writeback.path import write_back

    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    refusing = answering(400, b"redis_version:7.2.4 INTERNAL-BODY")
    with_password = _ticket(
        refusing.url.replace("http://", "http://admin:hunter2@") + "/hook?token=qs-secret", "1"
    )
    with_query = _ticket(refusing.url + "/hook?token=qs-secret", "2")
    decisions = [(t, result_for(t, "card_arrival"), []) for t in (with_password, with_query)]
    with caplog.at_level(logging.INFO):
        again = _settle(decisions, write_back(decisions))
    assert again == [] and refusing.hits == ["/hook?token=qs-secret"], "one call, no retry"
    reasons = [json.loads(e)["reason"] for e in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    assert len(reasons) == 2
    assert any("user name or password" in r for r in reasons)
    assert any("refused with 400" in r for r in reasons)
    shown = " ".join(reasons) + caplog.text
    for secret in ("hunter2", "admin", "qs-secret", "INTERNAL-BODY", "redis_version"):
        assert secret not in shown, f"{secret!r} leaked into a reason or a log line"
    assert redact("http://a:b@h:1/p?q=1#f") == "http://h:1/p"


def test_redirects_are_not_followed(
    rdb: redis.Redis, worker_env, monkeypatch: pytest.MonkeyPatch, answering
) -> None:
    from worker.writeback.path import write_back_one

    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    inside = answering(200)
    redirecting = answering(307, headers={"Location": inside.url + "/metadata"})
    t = _ticket(redirecting.url + "/hook")
    done = write_back_one(t, result_for(t, "card_arrival"), [])
    assert done["callback"] == "http 307" and inside.hits == []


def _url(rdb: Any) -> str:
    kwargs = rdb.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
