"""docs/configuration.md is generated from the settings classes and must match them."""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

from cli import config_doc

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_md_is_up_to_date() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == config_doc.render(), (
        "docs/configuration.md is out of date: python -m cli.config_doc > docs/configuration.md"
    )


def test_every_settings_class_and_field_is_documented() -> None:
    found = set()
    paths = [
        p
        for package in ("producer", "models", "worker")
        for p in ROOT.glob(f"{package}/**/settings.py")
    ]
    for path in paths:
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        found |= {
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
        }
    documented = {cls for cls, _ in config_doc.SETTINGS}
    assert found and found <= documented, found - documented
    text = config_doc.render()
    for cls in documented:
        for name in cls.model_fields:
            assert f"| `TRIAGE_{name.upper()}` |" in text


def test_a_fields_comment_is_its_description() -> None:
    class Example(BaseSettings):
        #: First line,
        #: second line.
        alpha: int = 1
        beta: int = 2

        gamma: int = 3

    comments = config_doc.field_comments(Example)
    assert comments == {"alpha": "First line, second line.", "beta": "see `TRIAGE_ALPHA`"}
