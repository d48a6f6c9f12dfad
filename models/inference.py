"""How a served encoder runs a forward pass: fp32 torch, int8 torch, or ONNX Runtime int8 on a CPU.

Chosen once at load (``TRIAGE_CPU_INFERENCE``) for the merged classifier and the embedder alike.
Both are a MiniLM encoder with a masked mean pool: the classifier puts its linear head on the
pool, the embedder normalises it. A `Run` takes a padded batch (``input_ids``, ``attention_mask``)
and gives the batch's outputs as an fp32 CPU tensor, whatever ran it.

- ``fp32``: the torch module as trained (also every GPU run, bf16 autocast where asked).
- ``int8``: torch's dynamic quantisation of the Linear layers (weights int8 per tensor).
- ``onnx``: an ONNX export, its Linear weights quantised to int8 per channel by ONNX Runtime
  (dynamic: activations quantised per batch), run with ORT's full graph optimisations (fused
  attention, GELU and layer norm). Exported once per model version into a cache directory
  (``TRIAGE_MODEL_CACHE_DIR``) and loaded from there afterwards.

On 2 cores, 512 Banking77 tickets: one MiniLM pass cost 4.5 ms of CPU a ticket in fp32, 2.4 in
torch int8, 2.0 in ONNX int8 (per-tensor int8 in ONNX bent some embeddings to cosine 0.92 of fp32;
per channel the least was 0.987, the mean 0.994).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from producer.errors import ModelError

log = logging.getLogger(__name__)

CpuInference = Literal["fp32", "int8", "onnx"]
CPU_INFERENCE: tuple[CpuInference, ...] = ("fp32", "int8", "onnx")
#: A padded batch (input ids, attention mask) -> its outputs, fp32 on the CPU.
Run = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Threads of one ONNX pass. A batch of short tickets splits badly across threads: on 2 cores a
#: pass on 2 threads took 30% more CPU (2.34 against 1.80 ms a Banking77 ticket) for about the
#: same wall time. So a pass runs on one core, and passes run side by side instead
#: (`worker.batches.first_pass`); sessions are safe to run from several threads at once.
ONNX_THREADS = 1
#: ONNX opset of the export (TorchScript exporter; MiniLM needs nothing newer).
OPSET = 17


class MeanPooled(nn.Module):
    """An encoder's masked mean pool, then `head` (the classifier's Linear) or unit length."""

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state.float()
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.head is not None:
            out: torch.Tensor = self.head(pooled)
            return out
        return nn.functional.normalize(pooled, p=2.0, dim=-1)


class LogitsOf(nn.Module):
    """A Hugging Face SEQ_CLS-style model called for its logits alone (what `Run` returns)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return out


def build_run(
    module: nn.Module,
    *,
    inference: CpuInference,
    device: torch.device,
    cache_file: Path | None = None,
    autocast: bool = True,
) -> Run:
    """`module` as a `Run`: on a GPU always torch (bf16 autocast when `autocast`), on the CPU as
    `inference` says. ``onnx`` reads `cache_file` when it is there, else exports into it."""
    module.eval()
    if device.type != "cpu" or inference == "fp32":
        return torch_run(module, device, autocast=autocast)
    if inference == "int8":
        return torch_run(quantized(module), device, autocast=False)
    if inference == "onnx":
        if cache_file is None:
            raise ValueError("ONNX inference needs a cache file for its export")
        if not cache_file.is_file():
            try:
                export_int8(module, cache_file)
            except OSError as exc:
                raise ModelError(
                    f"cannot write the ONNX export {cache_file}: {exc}; set "
                    "TRIAGE_MODEL_CACHE_DIR to a writable directory, or TRIAGE_CPU_INFERENCE=fp32"
                ) from exc
        return onnx_run(cache_file)
    raise ValueError(f"unknown CPU inference {inference!r}; expected one of {CPU_INFERENCE}")


def torch_run(module: nn.Module, device: torch.device, *, autocast: bool = True) -> Run:
    def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast(
                device.type, enabled=autocast and device.type == "cuda", dtype=torch.bfloat16
            ),
        ):
            out: torch.Tensor = module(ids.to(device), mask.to(device))
        return out.float().cpu()

    return run


def quantized(module: nn.Module) -> nn.Module:
    """`module` with its Linear layers int8 (torch dynamic quantisation), on the CPU."""
    with warnings.catch_warnings():
        # torch 2.10+ points eager-mode quantisation at torchao; the API still works, and
        # torchao is one more dependency for the same kernels.
        warnings.simplefilter("ignore")
        # Per output channel: per tensor, MiniLM's embeddings fell to cosine 0.95 of fp32.
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        out: nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            module.cpu(), {nn.Linear: qconfig}, dtype=torch.qint8
        )
    return out


def export_int8(module: nn.Module, out: Path) -> None:
    """Export `module` to ONNX and quantise its weights to int8 per channel, into `out`.

    Written beside `out` under a temporary name and moved into place: two workers starting at
    once each export, and neither reads the other's half-written file.
    """
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    # One padded row: with a mask of all ones the tracer may drop the masking altogether.
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    example = (torch.ones(2, 8, dtype=torch.long), mask)
    axes = {0: "batch", 1: "tokens"}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints in shapes
            torch.onnx.export(
                module.cpu(),
                example,
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["out"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "out": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        int8 = Path(tmp) / "int8.onnx"
        quiet = logging.getLogger()  # ORT's quantiser logs advice on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)
        os.replace(int8, out)
    log.info("exported an int8 ONNX model to %s", out)


def onnx_run(path: Path) -> Run:
    """An ONNX Runtime session of `path` on the CPU, one thread a pass (`ONNX_THREADS`)."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = ONNX_THREADS
    options.inter_op_num_threads = 1
    # Idle threads sleep rather than spin, as the worker's torch threads do (worker.process).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        return torch.from_numpy(out)

    return run
