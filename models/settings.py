"""Settings of the models and the cascade policy (prefix ``TRIAGE_``).

Thresholds live here so the worker and the evaluation read the same numbers; `triage tune`
writes tuned values next to the adapter, which take precedence over these defaults.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.data import examples_dir

PACKAGED_MINILM = "all-MiniLM-L6-v2"


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: Where adapters, the local Qdrant index and the embedded Redis live.
    data_dir: Path = Path(".triage")
    #: Label-set files by task name (JSON object), e.g. ``{"category": "labels.json"}``.
    labels: dict[str, Path] = Field(
        default_factory=lambda: {"category": examples_dir() / "banking77" / "labels.json"}
    )
    #: Base model of the classifier: a stable name (``all-MiniLM-L6-v2``, the packaged copy), a
    #: local path, or a Hugging Face id already in the local cache.
    base_model: str = PACKAGED_MINILM
    #: Adapter directory by task; default ``<data_dir>/adapters/<task>``.
    adapters: dict[str, Path] = Field(default_factory=dict)
    #: ``auto`` uses CUDA (bf16) when present, else the CPU (fp32).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Longest ticket the classifier reads, in tokens (longer ones lose their middle: head and
    #: tail kept); unset: the length the adapter was trained with (its ``config.max_length``).
    max_length: int | None = Field(default=None, ge=8, le=8192)
    #: Tickets per forward pass.
    batch_size: int = Field(default=64, ge=1, le=4096)
    #: Padded tokens per forward pass (tickets x longest ticket of the batch), 0 for no cap. The
    #: batch size then follows ticket length: a batch of long tickets stays within GPU memory,
    #: short ones still fill `batch_size`. On a GPU raise `batch_size` and let this bind.
    max_batch_tokens: int = Field(default=16384, ge=0)

    #: How the classifier and the embedder run on a CPU: ``onnx`` (ONNX Runtime, int8 weights,
    #: exported once per adapter version into ``model_cache_dir``, one thread a pass),
    #: ``int8`` (torch's dynamic quantisation) or ``fp32`` (the two models apart, as trained).
    #: Quantised, the layers the adapter left frozen run once for both models (one trunk,
    #: two tops). A GPU always runs torch (bf16 classifier).
    cpu_inference: Literal["onnx", "int8", "fp32"] = "onnx"
    #: Where ONNX exports of the served models are kept, named by adapter version (a content
    #: hash) and embedder; unset: ``$XDG_CACHE_HOME/ticket-triage/onnx`` (``~/.cache/...``), so
    #: workers and runs with other data dirs export each model once per machine.
    model_cache_dir: Path | None = None

    #: Sentence-transformers model for retrieval (same name rules as `base_model`).
    embedder: str = PACKAGED_MINILM
    #: Qdrant server URL; unset: local mode under ``<data_dir>/qdrant``.
    qdrant_url: str | None = None
    #: API key of the Qdrant server (Qdrant Cloud or a server started with one).
    qdrant_api_key: SecretStr | None = None
    #: Neighbours fetched per ticket.
    neighbours: int = Field(default=10, ge=1, le=100)
    #: A human-confirmed neighbour's vote counts this many times a model-set one.
    human_weight: float = Field(default=2.0, ge=1.0)
    #: Softmax temperature over neighbour similarities in the vote.
    vote_temperature: float = Field(default=0.05, gt=0)
    #: Share of the classifier in the mixed distribution (the rest is the neighbour vote).
    classifier_weight: float = Field(default=0.65, ge=0.0, le=1.0)

    #: The classifier alone decides at or above this calibrated confidence.
    classifier_threshold: float = Field(default=0.9, ge=0.0, le=1.01)
    #: The classifier mixed with the neighbour vote decides at or above this confidence.
    retrieval_threshold: float = Field(default=0.8, ge=0.0, le=1.01)
    #: The frontier's label goes to human review when the first pass was at least this confident
    #: in a different label.
    disagreement_margin: float = Field(default=0.6, ge=0.0, le=1.01)

    #: Frontier wire format: ``openai`` (also vLLM, Ollama...), ``anthropic``, or ``none``.
    frontier_provider: Literal["openai", "anthropic", "none"] = "none"
    #: Base URL of the frontier API; unset: the provider's own (a vLLM or Ollama server here).
    frontier_url: str | None = None
    #: API key of the frontier provider (a local server may take none).
    frontier_api_key: SecretStr | None = None
    #: Model name sent to the frontier API.
    frontier_model: str = "gpt-4o-mini"
    #: Longest wait for one frontier answer, seconds.
    frontier_timeout_s: float = Field(default=30.0, gt=0)
    #: Retries of a frontier call on 429, 5xx and timeouts, within one escalation.
    frontier_max_retries: int = Field(default=3, ge=0, le=10)
    #: First retry waits about this long (with jitter); each further retry doubles it.
    frontier_backoff_s: float = Field(default=0.5, ge=0)
    #: Parallel frontier calls per worker process.
    frontier_concurrency: int = Field(default=8, ge=1)
    #: Spend cap per UTC day, in US dollars; over it, escalations go to human review.
    frontier_daily_budget_usd: float = Field(default=20.0, ge=0)
    #: Prices per million tokens (input, output), for spend tracking.
    frontier_input_usd_per_mtok: float = Field(default=0.15, ge=0)
    frontier_output_usd_per_mtok: float = Field(default=0.60, ge=0)
    #: Neighbours given to the frontier as examples.
    frontier_examples: int = Field(default=5, ge=0, le=50)
    #: What an hour of the model machine costs (a GPU in production, the CPU in the demo), in US
    #: dollars: `triage eval` prices classifier and embedder time with it, and training too.
    gpu_usd_per_hour: float = Field(default=2.0, ge=0)

    @field_validator("frontier_api_key", "qdrant_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose's `${VAR:-}` passes an unset key as "": that is no key, not a key.
        return None if value == "" else value

    @model_validator(mode="after")
    def _frontier_complete(self) -> ModelSettings:
        if (
            self.frontier_provider != "none"
            and self.frontier_api_key is None
            and not self.frontier_url
        ):
            raise ValueError(
                f"TRIAGE_FRONTIER_PROVIDER={self.frontier_provider} needs TRIAGE_FRONTIER_API_KEY "
                "(or TRIAGE_FRONTIER_URL for a local server that takes no key)"
            )
        return self

    def adapter_dir(self, task: str) -> Path:
        return self.adapters.get(task, self.data_dir / "adapters" / task)

    def labels_path(self, task: str) -> Path:
        try:
            return self.labels[task]
        except KeyError:
            raise KeyError(f"no label set for task {task!r}; set TRIAGE_LABELS") from None

    @property
    def model_cache(self) -> Path:
        """Where ONNX exports of the served models are kept (rebuilt when missing)."""
        if self.model_cache_dir is not None:
            return self.model_cache_dir
        home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(home) / "ticket-triage" / "onnx"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def frontier_enabled(self) -> bool:
        return self.frontier_provider != "none"


@lru_cache
def get_settings() -> ModelSettings:
    return ModelSettings()
