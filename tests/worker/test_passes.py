"""How many first passes a worker process runs at once, and that side by side they keep apart.

ONNX passes run on one thread each, so a process runs them side by side on all cores but one;
torch passes (fp32, int8, a GPU) spread over the cores themselves and take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from models import settings as model_settings
from models.tokens import SharedTokens
from worker import process


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    model_settings.get_settings.cache_clear()
    yield monkeypatch
    model_settings.get_settings.cache_clear()


@pytest.mark.parametrize(
    ("inference", "device", "n_cores", "passes"),
    [
        ("onnx", "auto", 8, 7),
        ("onnx", "cpu", 2, 1),  # the second core runs the Python around the pass
        ("onnx", "cpu", 1, 1),
        ("onnx", "cuda", 8, 1),  # a GPU runs torch, one batch at a time
        ("fp32", "cpu", 8, 1),
        ("int8", "auto", 8, 1),
    ],
)
def test_single_threaded_passes_run_side_by_side_on_all_cores_but_one(
    cores: pytest.MonkeyPatch, inference: str, device: str, n_cores: int, passes: int
) -> None:
    cores.setenv("TRIAGE_CPU_INFERENCE", inference)
    cores.setenv("TRIAGE_DEVICE", device)
    cores.setattr("os.sched_getaffinity", lambda _: set(range(n_cores)))
    assert process.cores() == n_cores
    assert process.passes_side_by_side() == passes


def test_threads_keep_their_own_tokens_and_vectors() -> None:
    from models.assembly import shared_tokens

    tokens = SharedTokens(shared_tokens("all-MiniLM-L6-v2").tokenizer)
    texts = {
        "a": ["my card has not arrived", "what is the exchange rate"],
        "b": ["I forgot my passcode", "top up by card failed", "where is my transfer"],
    }
    both = threading.Barrier(2)
    seen: dict[str, tuple[list[list[int]], dict[int, object]]] = {}

    def work(name: str) -> None:
        mine = texts[name]
        ids = tokens.encode(mine, 64)
        tokens.keep_vectors(mine, {i: name for i in range(len(mine))})  # type: ignore[misc]
        both.wait()  # the other thread has written its own entries meanwhile
        again = tokens.encode(mine, 64)
        assert again is ids  # this thread's entry, not the other's texts
        seen[name] = (again, dict(tokens.vectors(mine)))

    threads = [threading.Thread(target=work, args=(name,)) for name in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {name: set(vectors.values()) for name, (_, vectors) in seen.items()} == {
        "a": {"a"},
        "b": {"b"},
    }
    assert [len(ids) for ids in seen["b"][0]] == [len(x) for x in tokens.encode(texts["b"], 64)]
    assert tokens.vectors(texts["a"]) == {}  # and this thread saw none of theirs


@pytest.mark.parametrize(("side_by_side", "at_once"), [(True, 3), (False, 1)])
def test_onnx_passes_run_side_by_side_and_torch_passes_take_turns(
    monkeypatch: pytest.MonkeyPatch, side_by_side: bool, at_once: int
) -> None:
    import time
    from types import SimpleNamespace

    from worker.batches import first_pass

    inside, most = [0], [0]
    count = threading.Lock()

    def a_pass(task: str, tickets: object, turn: AbstractContextManager[object]) -> list[object]:
        with turn:  # what `models.cascade.first_pass` holds around the model passes
            with count:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)
            with count:
                inside[0] -= 1
        return []

    monkeypatch.setattr(first_pass, "_first_pass", a_pass)
    models = SimpleNamespace(side_by_side=side_by_side)
    monkeypatch.setattr(first_pass.resources, "task_models", lambda task: models)
    monkeypatch.setattr(first_pass.resources, "embedder", lambda: SimpleNamespace(inference="onnx"))
    monkeypatch.setattr(process, "passes_side_by_side", lambda: 3)
    first_pass._passes_side_by_side.cache_clear()
    threads = [
        threading.Thread(target=first_pass.run_first_pass, args=("category", [])) for _ in range(4)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        first_pass._passes_side_by_side.cache_clear()
    assert most[0] == at_once
