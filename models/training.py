"""Train a LoRA adapter for one label set, calibrate it, and save it atomically.

`train(config, out_dir)` holds out a stratified split, picks the token length from the data
(unless given; over-long texts are cut head and tail by `models.truncation.encode`, as the worker
cuts them), trains LoRA (peft SEQ_CLS, the head in ``modules_to_save``) with AdamW, warm-up and
linear decay over length-grouped batches, keeps the epoch with the best held-out accuracy, fits a
temperature on the held-out logits, and writes only the adapter, ``labels.json``,
``triage_adapter.json`` (see `models.classifier`) and the held-out split (`HELDOUT_FILE`).

On an encoder, LoRA trains the top `TrainConfig.train_layers` layers only: the frozen layers
below run once per text (`models.layer_cache`), not once per epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import calibration
from models.base_models import pick_device
from models.batches import PASS_OVERHEAD_TOKENS, logits_of_token_ids
from models.classifier import (
    LABELS_FILE,
    META_FILE,
    META_FORMAT,
    adapter_version,
    build_model,
    default_head,
)
from models.data import LabelledText, read_labelled, write_labelled
from models.drift import confidence_histogram
from models.layer_cache import Features, TopLayers, layer_count
from models.progress import progress as progress_of
from models.settings import PACKAGED_MINILM
from models.truncation import encode, pick_max_length, share_cut, token_lengths
from producer.labelset import LabelSet

logger = logging.getLogger(__name__)

#: The held-out examples, saved next to the adapter for `triage tune`: JSON lines with the keys
#: ``text`` and ``label`` (`HELDOUT_LABEL_FIELD`) whatever the training file called its columns.
#: Read it with `read_heldout`.
HELDOUT_FILE = "heldout.jsonl"
HELDOUT_LABEL_FIELD = "label"
#: Share of the training texts a picked max_length keeps whole (the rest are cut head and tail).
MAX_LENGTH_SHARE = 0.95
#: Seconds between two progress lines off a terminal.
PROGRESS_EVERY_S = 5.0

#: LoRA targets by model type. Encoders: every linear layer (attention and feed-forward), which
#: costs little on a 6-layer model and learns faster than query/value alone.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("bert", "roberta", "xlm-roberta", "mpnet", "electra", "camembert"),
        ("query", "key", "value", "dense"),
    ),
    **dict.fromkeys(
        ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"),
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved (without the examples) next to the adapter."""

    #: The label set (a `LabelSet` or the path of its JSON file); fixes the head's size and order.
    labels: LabelSet | str | Path
    #: Labelled examples; every label must be in the label set.
    train_examples: Sequence[LabelledText]
    #: Held-out examples (epoch choice, temperature); None: a stratified `eval_fraction` of train.
    eval_examples: Sequence[LabelledText] | None = None
    eval_fraction: float = 0.2
    #: Cap on the examples used (before the split), sampled per label in proportion; None: all.
    max_train_examples: int | None = None
    #: Base model by stable name (see `models.base_models.resolve_base_model`).
    base_model: str = PACKAGED_MINILM
    #: ``mean_pool`` or ``sequence_classification``; None: mean pool for encoders.
    head: str | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    #: Module names LoRA wraps; None: `DEFAULT_TARGETS` for the model type, else peft's default.
    target_modules: tuple[str, ...] | None = None
    epochs: int = 4
    #: Early stopping: epochs without a better held-out accuracy before stopping.
    patience: int = 2
    #: LoRA and a fresh head learn well at a higher rate than a full fine-tune (1e-4); with two
    #: layers trained, 2e-3 (warm-up, then linear decay to zero over the epochs).
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    batch_size: int = 32
    #: Tokens per text (special tokens included); None: picked from the training texts, the
    #: smallest multiple of 8 that keeps `MAX_LENGTH_SHARE` of them whole (see `train`).
    max_length: int | None = None
    #: Encoder layers LoRA trains, counted from the top; the ones below are frozen and run once
    #: per text (`models.layer_cache`): on MiniLM-L6, two of six make an epoch about 3x cheaper
    #: (figures in `bench.wide_set`); Banking77 test: fine-tune 93.0%, cascade 94.0% (all layers,
    #: 6 epochs: 92.8%, 94.2%). None (or the layer count): every layer. Ignored for decoders.
    train_layers: int | None = 2
    seed: int = 0
    device: str = "auto"
    #: CPU threads for torch during training; None: every core this process may use.
    num_threads: int | None = None
    label_set: LabelSet = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.label_set = (
            self.labels if isinstance(self.labels, LabelSet) else LabelSet.load(self.labels)
        )
        if not self.train_examples:
            raise ValueError("train_examples is empty: give at least a few examples per label")
        for where, examples in (
            ("train_examples", self.train_examples),
            ("eval_examples", self.eval_examples or ()),
        ):
            unknown = sorted({ex.label for ex in examples} - set(self.label_set.names))
            if unknown:
                raise ValueError(
                    f"{where} has labels outside the label set "
                    f"{self.label_set.task!r}: {unknown[:5]}"
                )
        if self.eval_examples is not None and not self.eval_examples:
            raise ValueError("eval_examples is empty: give None to split train instead")
        _check(0.0 < self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction, "in (0, 1)")
        _check(
            self.max_train_examples is None or self.max_train_examples >= 2,
            "max_train_examples",
            self.max_train_examples,
            "None or >= 2",
        )
        _check(
            self.head in (None, "mean_pool", "sequence_classification"),
            "head",
            self.head,
            "None, 'mean_pool' or 'sequence_classification'",
        )
        for name in ("lora_r", "lora_alpha", "epochs", "batch_size", "patience"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(
            self.train_layers is None or self.train_layers >= 1,
            "train_layers",
            self.train_layers,
            "None or >= 1",
        )
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "in [0, 1)")
        _check(0.0 < self.learning_rate < 1.0, "learning_rate", self.learning_rate, "in (0, 1)")
        _check(self.weight_decay >= 0.0, "weight_decay", self.weight_decay, ">= 0")
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", self.warmup_ratio, "in [0, 1)")
        _check(
            self.max_length is None or 8 <= self.max_length <= 8192,
            "max_length",
            self.max_length,
            "None or in [8, 8192]",
        )
        _check(
            self.num_threads is None or self.num_threads >= 1,
            "num_threads",
            self.num_threads,
            "None or >= 1",
        )
        if self.target_modules is not None:
            self.target_modules = tuple(self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the examples become counts, the label set its path or task name."""
        out = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("train_examples", "eval_examples", "label_set", "labels")
        }
        out["labels"] = (
            self.label_set.task if isinstance(self.labels, LabelSet) else str(self.labels)
        )
        out["train_examples"] = len(self.train_examples)
        out["eval_examples"] = None if self.eval_examples is None else len(self.eval_examples)
        return out


@dataclass(frozen=True)
class TrainReport:
    out_dir: Path
    version: str
    eval_accuracy: float
    best_epoch: int
    epochs_run: int
    temperature: float
    ece_before: float
    ece_after: float
    train_examples: int
    eval_examples: int
    train_time_s: float
    #: Training examples per second over the optimiser steps (evaluation excluded).
    examples_per_s: float
    #: Tokens per text the adapter was trained with (and is served with), and the share of the
    #: training texts longer than that (cut head and tail).
    max_length: int = 0
    share_cut: float = 0.0

    def metrics(self) -> dict[str, float | int]:
        return {k: v for k, v in asdict(self).items() if k not in ("out_dir", "version")}


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> TrainReport:
    """Train, calibrate and save an adapter to `out_dir` (replaced atomically if it exists).

    `progress`: a bar on a terminal, else a log line every few seconds (loss, held-out accuracy).
    """
    from peft import LoraConfig, TaskType, get_peft_model

    started = time.perf_counter()
    out_dir = Path(out_dir)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    labels = config.label_set
    train_set, eval_set = _split(config, rng)

    head = config.head or default_head(config.base_model)
    model, tokenizer = build_model(config.base_model, len(labels), head, device)
    ceiling = _length_ceiling(model)
    lengths = token_lengths(tokenizer, [ex.text for ex in train_set], ceiling)
    if config.max_length is None:
        # Saved in the meta's config: the worker serves with the length training picked.
        picked = pick_max_length(lengths, share=MAX_LENGTH_SHARE, ceiling=ceiling)
        config = replace(config, max_length=picked)
    assert config.max_length is not None
    cut = share_cut(lengths, config.max_length)
    logger.info(
        "max length %d tokens: %.1f%% of the %d training texts are longer and cut head and tail",
        config.max_length,
        100 * cut,
        len(lengths),
    )
    targets = config.target_modules or DEFAULT_TARGETS.get(model.config.model_type)
    n_layers = layer_count(model)
    top = (
        list(range(n_layers - config.train_layers, n_layers))
        if n_layers is not None and config.train_layers is not None
        else None
    )
    # task_type SEQ_CLS puts the head ("classifier" or "score") in modules_to_save: trained in
    # full and saved with the adapter.
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(targets) if targets else None,
        layers_to_transform=top if top and len(top) < (n_layers or 0) else None,
        layers_pattern="layer" if top and len(top) < (n_layers or 0) else None,
    )
    model = get_peft_model(model, lora)

    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.num_threads or len(os.sched_getaffinity(0)))
    try:
        with _progress_lines(progress):
            fit = _fit(model, tokenizer, config, train_set, eval_set, device, rng, progress)
    finally:
        torch.set_num_threads(old_threads)

    eval_y = np.array([labels.index[ex.label] for ex in eval_set])
    temperature = calibration.fit_temperature(fit.eval_logits, eval_y)
    ece_before = calibration.expected_calibration_error(
        calibration.softmax(fit.eval_logits), eval_y
    )
    ece_after = calibration.expected_calibration_error(
        calibration.softmax(fit.eval_logits / temperature), eval_y
    )
    report = dict(
        eval_accuracy=fit.accuracy,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        temperature=temperature,
        ece_before=ece_before,
        ece_after=ece_after,
        train_examples=len(train_set),
        eval_examples=len(eval_set),
        train_time_s=time.perf_counter() - started,
        examples_per_s=fit.examples_per_s,
        max_length=config.max_length,
        share_cut=cut,
    )
    meta = {
        "format": META_FORMAT,
        "base_model": config.base_model,
        "head": head,
        "task": labels.task,
        "num_labels": len(labels),
        "temperature": temperature,
        "config": config.to_dict(),
        "git_revision": _git_revision(),
        "metrics": report,
        # What `triage drift` compares recent traffic with: the training label mix and the
        # calibrated top confidence on the held-out split (a histogram over [0, 1]).
        "label_distribution": dict(Counter(ex.label for ex in train_set)),
        "heldout_confidence": confidence_histogram(
            calibration.softmax(fit.eval_logits / temperature).max(axis=1)
        ),
        "heldout": {"file": HELDOUT_FILE, "text_field": "text", "label_field": HELDOUT_LABEL_FIELD},
        "train_time_s": report["train_time_s"],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))  # the LoRA weights and the head only, not the base
        labels.save(tmp / LABELS_FILE)
        # The held-out split travels with the adapter: `triage tune` fits thresholds on exactly
        # the tickets training never saw (a few hundred KB at most).
        write_labelled(tmp / HELDOUT_FILE, eval_set, label_field=HELDOUT_LABEL_FIELD)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    _save_atomically(out_dir, write)
    logger.info(
        "adapter saved to %s: eval accuracy %.4f, temperature %.3f, ECE %.4f -> %.4f",
        out_dir,
        fit.accuracy,
        temperature,
        ece_before,
        ece_after,
    )
    return TrainReport(out_dir=out_dir, version=adapter_version(out_dir), **report)  # type: ignore[arg-type]


def read_heldout(adapter_dir: str | Path) -> list[LabelledText]:
    """The held-out split saved beside an adapter (`HELDOUT_FILE`).

    Adapters trained before the file's keys were fixed wrote the label under ``category``.
    """
    path = Path(adapter_dir) / HELDOUT_FILE
    with path.open(encoding="utf-8") as fh:
        first = next((line for line in fh if line.strip()), "{}")
    field_name = HELDOUT_LABEL_FIELD if HELDOUT_LABEL_FIELD in json.loads(first) else "category"
    return read_labelled(path, "text", field_name)


@dataclass
class _Fit:
    accuracy: float
    best_epoch: int
    epochs_run: int
    eval_logits: np.ndarray[Any, np.dtype[np.float32]]
    examples_per_s: float


def _fit(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    train_set: list[LabelledText],
    eval_set: list[LabelledText],
    device: torch.device,
    rng: np.random.Generator,
    progress: bool,
) -> _Fit:
    assert config.max_length is not None
    index = config.label_set.index
    ids = encode(tokenizer, [ex.text for ex in train_set], config.max_length)
    eval_ids = encode(tokenizer, [ex.text for ex in eval_set], config.max_length)
    y = torch.tensor([index[ex.label] for ex in train_set])
    eval_y = np.array([index[ex.label] for ex in eval_set])
    split = TopLayers.of(model, config.train_layers, tokenizer.pad_token_id)
    feats: tuple[Features, Features] | None = None
    if split is not None:
        with progress_of(
            "frozen layers", len(ids) + len(eval_ids), enabled=progress, every_s=PROGRESS_EVERY_S
        ) as step:
            feats = (split.features(ids, step), split.features(eval_ids, step))

    def logits_of(batch: list[int]) -> torch.Tensor:
        if split is not None and feats is not None:
            return split.logits(*feats[0].batch(batch))
        input_ids, mask = _pad([ids[i] for i in batch], tokenizer.pad_token_id)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out: torch.Tensor = model(
                input_ids=input_ids.to(device), attention_mask=mask.to(device)
            ).logits
        return out

    def held_out_logits() -> np.ndarray[Any, np.dtype[np.float32]]:
        if feats is not None:
            return feats[1].logits()
        return logits_of_token_ids(
            model,
            eval_ids,
            pad_id=tokenizer.pad_token_id,
            device=device,
            batch_size=64,
            overhead_tokens=PASS_OVERHEAD_TOKENS.get(device.type),
        )

    steps_per_epoch = math.ceil(len(ids) / config.batch_size)
    total = steps_per_epoch * config.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    warmup = max(1, round(total * config.warmup_ratio))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )

    best = _Fit(-1.0, 0, 0, np.empty(0, dtype=np.float32), 0.0)
    best_state: dict[str, torch.Tensor] = {}
    step_time, seen, loss_ema, acc = 0.0, 0, float("nan"), float("nan")
    with progress_of("training", total, enabled=progress, every_s=PROGRESS_EVERY_S) as step:
        for epoch in range(1, config.epochs + 1):
            model.train()
            for batch in _length_grouped_batches([len(x) for x in ids], config.batch_size, rng):
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(
                    logits_of(batch).float(), y[batch].to(device)
                )
                torch.autograd.backward(loss)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step_time += time.perf_counter() - t0
                seen += len(batch)
                # An exponential moving average: a readable loss despite noisy batches.
                loss_ema = (
                    loss.item() if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * loss.item()
                )
                step.advance(1, note=_note(epoch, config.epochs, loss_ema, acc, epoch - 1))
            eval_logits = held_out_logits()
            acc = float((eval_logits.argmax(axis=1) == eval_y).mean())
            logger.info("epoch %d: loss %.4f, held-out accuracy %.4f", epoch, loss_ema, acc)
            step.set_note(_note(epoch, config.epochs, loss_ema, acc, epoch))
            if acc > best.accuracy:
                best = _Fit(acc, epoch, epoch, eval_logits, 0.0)
                best_state = {
                    name: p.detach().clone()
                    for name, p in model.named_parameters()
                    if p.requires_grad
                }
            elif epoch - best.best_epoch >= config.patience:
                logger.info("early stop: no better eval accuracy since epoch %d", best.best_epoch)
                break
    model.load_state_dict(best_state, strict=False)
    best.epochs_run = epoch
    best.examples_per_s = seen / step_time if step_time else 0.0
    return best


def _note(epoch: int, epochs: int, loss: float, acc: float, measured: int) -> str:
    """The progress note: the epoch, the running loss and the last held-out accuracy (if any),
    with the epoch it was measured after (mid-epoch, the one before)."""
    note = f"epoch {epoch}/{epochs}, loss {loss:.3f}"
    return (
        note if math.isnan(acc) else f"{note}, held-out accuracy {acc:.3f} after epoch {measured}"
    )


@contextmanager
def _progress_lines(enabled: bool) -> Iterator[None]:
    """Progress lines reach stderr even when the caller set up no logging (the demo, a script).

    Where logging is configured (the CLI's basicConfig, a worker), it decides, as usual.
    """
    progress_logger = logging.getLogger("triage.progress")
    if not enabled or sys.stderr.isatty() or progress_logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    level = progress_logger.level
    progress_logger.addHandler(handler)
    progress_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        progress_logger.removeHandler(handler)
        progress_logger.setLevel(level)


def _length_ceiling(model: Any) -> int:
    """The most tokens the base model reads (its position embeddings), at most 512."""
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    return int(min(512, positions))


def _split(
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[list[LabelledText], list[LabelledText]]:
    """The capped sample and its held-out part, both stratified by label."""
    examples = list(config.train_examples)
    by_label: dict[str, list[int]] = {}
    for i in rng.permutation(len(examples)):
        by_label.setdefault(examples[i].label, []).append(int(i))
    if config.max_train_examples is not None and config.max_train_examples < len(examples):
        # Rank r of a label with n examples sorts at (r + 0.5) / n: taking the lowest keys keeps
        # every label's share of the data (and rare labels appear early).
        keyed = sorted(
            ((r + 0.5) / len(idx) + rng.random() * 1e-9, i)
            for idx in by_label.values()
            for r, i in enumerate(idx)
        )
        kept = {i for _, i in keyed[: config.max_train_examples]}
        by_label = {lb: [i for i in idx if i in kept] for lb, idx in by_label.items()}
    if config.eval_examples is not None:
        return [examples[i] for idx in by_label.values() for i in idx], list(config.eval_examples)
    train_idx: list[int] = []
    eval_idx: list[int] = []
    for idx in by_label.values():
        # At least one example of each label stays in train; labels with one example never eval.
        n_eval = min(len(idx) - 1, max(1, round(len(idx) * config.eval_fraction)))
        eval_idx += idx[:n_eval]
        train_idx += idx[n_eval:]
    if not eval_idx:
        raise ValueError("no held-out examples: every label has a single example; add more")
    return [examples[i] for i in train_idx], [examples[i] for i in eval_idx]


def _length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Shuffled batches of similar lengths: sorted within chunks of 50 batches, then shuffled."""
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(perm), chunk):
        part = sorted(perm[start : start + chunk].tolist(), key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _save_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Write into a temp dir beside `out_dir`, then swap it in: a killed run leaves no half one."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        write(tmp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
            out_dir.rename(old / "adapter")
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _git_revision() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name}={value!r} is invalid: expected {expected}")
