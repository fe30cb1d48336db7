"""contactd.example.toml documents every key config.py accepts, and nothing else."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from contactd.config import Settings

EXAMPLE = Path(__file__).parents[3] / "contactd.example.toml"
# `[section]`, or a named table of a section's map (`[intake.forms.callback]`).
SECTION = re.compile(r"^\[([a-z_]+)(?:\.([a-z_]+)\.[a-z0-9_-]+)?\]\s*$")
# a key, set or shown commented out (`# vosk_model_path = "..."`: optional, no default value)
KEY = re.compile(r"^#?\s*([a-z_]+)\s*=")


def documented() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := SECTION.match(line):
            section = match.group(1)
            keys.setdefault(section, set())
            if match.group(2):  # the table documents the map key and its own keys
                keys[section].add(match.group(2))
                section = f"{section}.{match.group(2)}"
                keys.setdefault(section, set())
        elif section is not None and (match := KEY.match(line)):
            keys[section].add(match.group(1))
    return keys


def accepted() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out[name] = set(model.model_fields)
        for key, sub in model.model_fields.items():  # maps of named tables
            args = typing.get_args(sub.annotation)
            if (typing.get_origin(sub.annotation) is dict and isinstance(args[1], type)
                    and issubclass(args[1], BaseModel)):
                out[f"{name}.{key}"] = set(args[1].model_fields)
    return out


def test_every_accepted_key_is_documented() -> None:
    have, want = documented(), accepted()
    missing = {s: sorted(k - have.get(s, set())) for s, k in want.items() if k - have.get(s, set())}
    assert missing == {}, f"keys config.py accepts but contactd.example.toml lacks: {missing}"


def test_nothing_documented_is_refused() -> None:
    have, want = documented(), accepted()
    extra = {s: sorted(k - want.get(s, set())) for s, k in have.items() if k - want.get(s, set())}
    assert extra == {}, f"keys contactd.example.toml shows but config.py refuses: {extra}"
