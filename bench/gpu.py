"""`gpu`: an 8B-shaped Llama + LoRA as a sequence classifier, bf16, on tickets of ~200 tokens.

The model is built from a `LlamaConfig` with Llama-3.1-8B's sizes and random weights (weights do
not change the speed), wrapped in a peft LoRA adapter (r=16 on q/k/v/o, the head saved in full)
as `triage train` makes them. Batches run through the worker's own forward path
(`models.batches.logits_of_token_ids`: length-sorted, padded per batch, `inference_mode`, bf16
autocast), at several batch sizes, with the adapter merged (one task per process) and unmerged at
the largest batch (several tasks on one base, `AdapterSet`). A last run mixes ticket lengths
(100-300 tokens) and lets the token budget (`TRIAGE_MAX_BATCH_TOKENS`) pick the batches.

`tflops` is 2 x (parameters in matmuls: every Linear, not the embedding) x tokens per second.
Without CUDA it runs a tiny Llama on the CPU, so the code cannot rot; those figures say nothing
about a GPU, and the summary says so.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from bench.harness import Options, percentiles_ms

LLAMA_31_8B: dict[str, Any] = {
    "vocab_size": 128_256,
    "hidden_size": 4096,
    "intermediate_size": 14_336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-5,
}
TINY: dict[str, Any] = {
    "vocab_size": 32_000,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
#: Dense bf16 peak of known cards, TFLOP/s (no sparsity), matched in `torch.cuda.get_device_name`.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,  # SXM
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
}
NUM_LABELS = 77
TOKENS = 200
#: The worker's default token budget (`TRIAGE_MAX_BATCH_TOKENS`).
BUDGET_TOKENS = 16_384


def run(opts: Options) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    name = opts.gpu_config if opts.gpu_config != "auto" else ("8b" if cuda else "tiny")
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    sizes = (1, 8, 32, 64, 128) if cuda else (1, 8, 32)
    repeats = 10 if cuda else 3
    rng = np.random.default_rng(0)
    vocab = int((LLAMA_31_8B if name == "8b" else TINY)["vocab_size"])

    model = build(name, device, dtype)
    largest = sizes[-1]
    unmerged = _sweep(model, device, [largest], repeats, rng, vocab)[0]
    model = model.merge_and_unload()
    params = matmul_params(model)
    rows = _sweep(model, device, sizes, repeats, rng, vocab)
    budget = _budget_run(model, device, rng, vocab, n=4 * largest)
    for row in [*rows, unmerged, budget]:
        row["tflops"] = float(f"{2 * params * row.pop('tokens_per_s') / 1e12:.3g}")
    best = max(rows, key=lambda row: row["tickets_per_s"])
    gpu = torch.cuda.get_device_name() if cuda else None
    peak = _peak_tflops(gpu)
    return {
        "bench": "gpu",
        "gpu": gpu,
        "gpu_measured": cuda and name == "8b",
        "config": "Llama-3.1-8B shapes, random weights" if name == "8b" else "tiny Llama (CPU)",
        "dtype": str(dtype).removeprefix("torch."),
        "matmul_params": params,
        "tokens_per_ticket": TOKENS,
        "tickets_per_s": best["tickets_per_s"],
        "tflops": best["tflops"],
        "best_batch": best["batch"],
        "peak_tflops": peak,
        "mfu": round(best["tflops"] / peak, 3) if peak else None,
        "by_batch": rows,
        "unmerged_adapter": unmerged,
        "token_budget": budget,
    }


def build(name: str, device: torch.device, dtype: torch.dtype) -> Any:
    """A random Llama sequence classifier with a LoRA adapter, built straight on the device."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import LlamaConfig, LlamaForSequenceClassification

    sizes = LLAMA_31_8B if name == "8b" else TINY
    config = LlamaConfig(**sizes, pad_token_id=0)
    config.num_labels = NUM_LABELS
    classifier: Any = LlamaForSequenceClassification  # untyped constructor
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no fp32 copy of 8B weights first
    try:
        with device:
            model = classifier(config)
    finally:
        torch.set_default_dtype(default)
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=16,
        lora_alpha=32,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    return get_peft_model(model, lora).to(device=device, dtype=dtype).eval()


def matmul_params(model: Any) -> int:
    """Parameters that take part in a matmul per token: every Linear weight (no embeddings)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def _sweep(
    model: Any,
    device: torch.device,
    sizes: tuple[int, ...] | list[int],
    repeats: int,
    rng: np.random.Generator,
    vocab: int,
) -> list[dict[str, Any]]:
    rows = []
    for batch in sizes:
        ids = [_random_ids(rng, vocab, TOKENS) for _ in range(batch)]
        for _ in range(2):  # warm-up: kernels picked, memory pooled
            _forward(model, device, ids, batch)
        times = [_forward(model, device, ids, batch) for _ in range(repeats)]
        rows.append(_row(batch, batch * TOKENS, times))
    return rows


def _budget_run(
    model: Any, device: torch.device, rng: np.random.Generator, vocab: int, n: int
) -> dict[str, Any]:
    """Tickets of 100-300 tokens, batches cut by the token budget (as the worker does)."""
    from models.batches import plan_batches

    ids = [_random_ids(rng, vocab, int(rng.integers(100, 301))) for _ in range(n)]
    batches = plan_batches([len(x) for x in ids], batch_size=n, max_batch_tokens=BUDGET_TOKENS)
    _forward(model, device, ids[: len(batches[0])], n)
    started = time.perf_counter()
    _forward(model, device, ids, n, BUDGET_TOKENS)
    elapsed = time.perf_counter() - started
    row = _row(n, sum(len(x) for x in ids), [elapsed])
    row.pop("p50_ms"), row.pop("p95_ms")
    row["batches"] = len(batches)
    row["max_batch_tokens"] = BUDGET_TOKENS
    return row


def _forward(
    model: Any,
    device: torch.device,
    ids: list[list[int]],
    batch_size: int,
    max_batch_tokens: int | None = None,
) -> float:
    from models.batches import logits_of_token_ids

    started = time.perf_counter()
    # The logits come back to the CPU: the time includes the device's whole work.
    logits_of_token_ids(
        model,
        ids,
        pad_id=0,
        device=device,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )
    return time.perf_counter() - started


def _row(batch: int, tokens: int, times: list[float]) -> dict[str, Any]:
    total = sum(times)
    return {
        "batch": batch,
        "tickets_per_s": round(batch * len(times) / total, 1),
        "tokens_per_s": tokens * len(times) / total,
        **percentiles_ms(times),
    }


def _random_ids(rng: np.random.Generator, vocab: int, n: int) -> list[int]:
    return [int(x) for x in rng.integers(1, vocab, size=n)]


def _peak_tflops(gpu: str | None) -> float | None:
    if gpu is None:
        return None
    for key, peak in PEAK_BF16_TFLOPS.items():
        if key in gpu:
            return peak
    return None
