"""How a model worker process runs: torch's threads, its heap, and no CUDA before a fork."""

from __future__ import annotations

import ctypes
import os
import sys
import time
from functools import lru_cache

#: Least time between two heap trims (see `trim_heap`).
TRIM_EVERY_S = 1.0
_last_trim = [0.0]


def trim_heap() -> None:
    """Give the heap's free memory back to the OS, at most once every `TRIM_EVERY_S`.

    Batches of ever different shapes leave glibc's heap fragmented: a process running MiniLM
    on random batches crept up ~8 KB a ticket; trimming after each batch kept it within a few MB
    over 5,000 tickets, ~95 MB lower, for a trim of well under a millisecond.
    """
    now = time.monotonic()
    if now - _last_trim[0] < TRIM_EVERY_S or (libc := _libc()) is None:
        return
    _last_trim[0] = now
    libc.malloc_trim(0)


@lru_cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only: musl and macOS have none)
    except (OSError, AttributeError):
        return None
    return libc


def passive_threads() -> None:
    """Let torch's OpenMP threads sleep, not spin, while they wait; call before torch loads.
    And give numpy's BLAS one thread, before numpy loads or after.

    Spinning threads need every core to themselves: with anything else running (Redis, the IO
    pools, a second worker), MiniLM forward passes on 2 cores ran 4-13x slower with 2 spinning
    threads than with 1; passive waiting made 2 threads as fast as 1 under that load.
    numpy's OpenBLAS (the neighbour search's one product per batch) spins its idle threads after
    every call: with a search per ticket its thread kept a whole core of 2 busy. Its products are
    small; torch does the heavy ones with its own threads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "numpy" in sys.modules:  # loaded already: the variable came too late for it
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(limits=1, user_api="blas")


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) or 1


def passes_side_by_side() -> int:
    """First passes one process may run at once: when each runs on one thread (ONNX on the CPU,
    `models.inference.ONNX_THREADS`), one per core but one core, which is left to what the GIL
    serialises (the event loop, the write-back, the Python of each pass); else one (torch
    spreads a pass over every core itself; a GPU holds one batch's activations).

    On 2 cores (Banking77 through one worker, `python -m bench e2e`, a quiet machine), two
    passes side by side ran 306 and 255 tickets/s in two runs, at 5.06 and 5.76 ms of CPU a
    ticket; one at a time 270 and 248 tickets/s at 4.32 and 4.67 ms. The second core is busy
    with the Python around the passes, and the GIL makes both slower: side by side buys an
    uncertain 10-15% of throughput for 15-25% more CPU a ticket.
    """
    from models.settings import get_settings

    s = get_settings()
    return max(1, cores() - 1) if s.cpu_inference == "onnx" and s.device != "cuda" else 1


def check_no_cuda_before_fork() -> None:
    """Refuse to fork children from a process that has initialised CUDA (they would crash).

    Called in the worker's main process before its pool starts; models load in the children.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA was initialised in the worker's parent process before forking; models must "
            "load lazily in the process that uses them (worker.resources), not at import"
        )


def forks(pool: object) -> bool:
    """Whether a Celery pool (its name, or class before Celery resolves it) forks children."""
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    return "prefork" in str(name)
