"""The worker's policy: `triage tune`'s policy.json next to the adapter wins over settings."""

from __future__ import annotations

from models.cascade import POLICY_FILE, Policy
from models.settings import get_settings
from worker import resources


def test_worker_policy_prefers_the_tuned_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIAGE_ADAPTERS", f'{{"category": "{tmp_path}"}}')
    monkeypatch.setenv("TRIAGE_CLASSIFIER_THRESHOLD", "0.42")
    get_settings.cache_clear()
    resources.policy.cache_clear()
    try:
        assert resources.policy("category").classifier_threshold == 0.42
        Policy(classifier_threshold=0.97, classifier_weight=0.8).save(tmp_path / POLICY_FILE)
        resources.policy.cache_clear()
        tuned = resources.policy("category")
        assert (tuned.classifier_threshold, tuned.classifier_weight) == (0.97, 0.8)
    finally:
        get_settings.cache_clear()
        resources.policy.cache_clear()
