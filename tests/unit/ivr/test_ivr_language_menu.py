"""Language menus in flow files: checked at load with the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactd.errors import ConfigError
from contactd.ivr.flows import load_flow, shipped_flow

HEAD = '[flow]\nname = "f"\nlanguages = ["en", "ko"]\n[steps.lang]\nsay = "Press 1."\n'


@pytest.mark.parametrize(
    ("step", "needle"),
    [
        ('languages = { "1" = "fr" }\nnext = "lang"\n', "'fr' is not one of the flow's languages"),
        ('languages = { "12" = "en" }\nnext = "lang"\n', "'12': a choice is one key"),
        ('languages = { "1" = "en" }\n', 'a language menu needs next = "step"'),
        ('words = { "1" = ["english"] }\n', "words: is for language menus"),
        ('languages = { "1" = "en" }\nnext = "lang"\ncollect = "digits"\nfield = "x"\n', "one"),
    ],
)
def test_bad_language_menus_are_named(tmp_path: Path, step: str, needle: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(HEAD + step, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_flow(path)
    assert "f.toml:" in str(err.value) and "steps.lang" in str(err.value)
    assert needle in str(err.value)


def test_the_shipped_multilingual_intake_asks_the_language_first() -> None:
    flow = shipped_flow("intake_languages")
    menu = flow.steps[flow.start]
    assert (menu.languages, menu.next) == ({"1": "en", "2": "ko"}, "greet")


def test_a_confirmation_belongs_to_an_action_step(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(HEAD + 'confirm_sms = "Thanks."\nnext = "lang"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"steps.lang.confirm_sms: is for steps with an action"):
        load_flow(path)
