"""One base, many adapters: several label tasks (or tenants) share one loaded base model.

The base is loaded once; each adapter's LoRA weights and head sit on it under the task's name, and
`predict_proba(task, texts)` switches to that adapter for the batch (peft ``set_adapter``). A
switch costs nothing but a lock, so a worker can serve category and priority from one copy of an
8B base instead of two.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from models.base_models import pick_device
from models.classifier import (
    DEFAULT_BATCHING,
    LABELS_FILE,
    Batching,
    adapter_version,
    build_model,
    predict_logits,
    read_meta,
)
from producer.errors import LabelSetError, ModelError
from producer.labelset import LabelSet


class AdapterSet:
    """Adapters by task name on one base; thread-safe (one adapter is active at a time)."""

    def __init__(
        self,
        adapter_dirs: Mapping[str, Path],
        *,
        device: str = "auto",
        batching: Batching = DEFAULT_BATCHING,
    ) -> None:
        from peft import PeftModel

        if not adapter_dirs:
            raise ModelError("AdapterSet needs at least one adapter directory")
        metas = {task: read_meta(Path(d)) for task, d in adapter_dirs.items()}
        bases = {(m["base_model"], m["head"]) for m in metas.values()}
        if len(bases) != 1:
            raise ModelError(
                f"adapters were trained on different bases or heads {sorted(bases)}; "
                "load them as separate classifiers, or retrain them on one base"
            )
        base_model, head = bases.pop()
        self.device = pick_device(device)
        self.batching = batching
        self.labels: dict[str, LabelSet] = {}
        self.temperatures: dict[str, float] = {}
        self.versions: dict[str, str] = {}
        self._lock = threading.Lock()
        first = next(iter(adapter_dirs))
        model, self.tokenizer = build_model(
            base_model, int(metas[first]["num_labels"]), head, self.device
        )
        for task, adapter_dir in adapter_dirs.items():
            adapter_dir = Path(adapter_dir)
            try:
                labels = LabelSet.load(adapter_dir / LABELS_FILE)
            except LabelSetError as exc:
                raise ModelError(f"adapter {adapter_dir}: {exc}") from exc
            try:
                if task == first:
                    model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=task)
                else:
                    _load_with_own_head(model, adapter_dir, task, len(labels))
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise ModelError(
                    f"adapter {adapter_dir} does not fit base {base_model!r}: {exc}"
                ) from exc
            self.labels[task] = labels
            self.temperatures[task] = float(metas[task]["temperature"])
            self.versions[task] = adapter_version(adapter_dir)
        self.model: Any = model.to(self.device).eval()
        self.base_model = base_model

    @property
    def tasks(self) -> list[str]:
        return list(self.labels)

    def predict_proba(self, task: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Calibrated probabilities of `task`'s labels: one batch with that adapter active."""
        if task not in self.labels:
            raise ModelError(f"no adapter for task {task!r}; loaded: {self.tasks}")
        with self._lock:  # set_adapter changes the shared model: one batch at a time
            self.model.set_adapter(task)
            logits = predict_logits(
                self.model, self.tokenizer, texts, device=self.device, batching=self.batching
            )
        scaled = torch.from_numpy(logits) / self.temperatures[task]
        out: npt.NDArray[np.float32] = torch.softmax(scaled, dim=-1).numpy()
        return out


def _load_with_own_head(model: Any, adapter_dir: Path, task: str, num_labels: int) -> None:
    """Load one more adapter; a head of another size than the base's gets its own module.

    peft copies the base's head for every adapter (``modules_to_save``), so an adapter with 3
    labels on a base built for 77 does not fit; we load the LoRA weights, then swap in a head of
    the right size with the adapter's saved weights.
    """
    from peft.utils import ModulesToSaveWrapper
    from safetensors.torch import load_file

    with warnings.catch_warnings():
        # peft warns about the head it skipped; it is loaded just below.
        warnings.filterwarnings("ignore", message="Some weights of", category=UserWarning)
        model.load_adapter(adapter_dir, adapter_name=task, ignore_mismatched_sizes=True)
    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    for name, module in model.named_modules():
        if not isinstance(module, ModulesToSaveWrapper):
            continue
        old = module.modules_to_save[task]
        if not isinstance(old, torch.nn.Linear) or old.out_features == num_labels:
            continue
        # Saved keys drop the adapter name: ``base_model.model.classifier.weight``.
        prefix = name.removeprefix("base_model.model.")
        weight = _find(state, f"{prefix}.weight")
        head = torch.nn.Linear(old.in_features, num_labels, bias=old.bias is not None)
        head.weight.data.copy_(weight)
        if head.bias is not None:
            head.bias.data.copy_(_find(state, f"{prefix}.bias"))
        module.modules_to_save[task] = head.to(old.weight.device, old.weight.dtype)


def _find(state: dict[str, torch.Tensor], suffix: str) -> torch.Tensor:
    for key, value in state.items():
        if key.endswith(suffix) and "lora_" not in key:
            return value
    raise KeyError(f"no {suffix} in the adapter's weights")
