"""Flow files: the shipped ones load; mistakes are reported with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactd.errors import ConfigError
from contactd.ivr.flows import Action, Collect, load_flow, shipped_flow

GOOD = """\
[flow]
languages = ["en"]

[steps.menu]
say = "Press 1."
choices = { "1" = { next = "bye" } }

[steps.bye]
say = "Bye."
action = "hangup"
"""


def test_shipped_flows_load_with_every_prompt_in_every_language() -> None:
    intake, survey = shipped_flow("intake"), shipped_flow("survey")
    assert intake.steps["agent"].action is Action.TRANSFER
    assert intake.steps["reason"].collect is Collect.FREE
    assert survey.steps["score"].collect is Collect.DIGITS
    for flow in (intake, survey):
        for step in flow.steps.values():
            assert set(step.say) == set(flow.languages)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        (
            GOOD.replace('next = "bye"', 'next = "nowhere"'),
            r"flow\.toml:6: steps\.menu\.1: goes to 'nowhere'",
        ),
        (
            GOOD.replace('action = "hangup"', 'action = "explode"'),
            r"flow\.toml:10: steps\.bye\.action: must be one of",
        ),
        (
            GOOD.replace('say = "Bye."', 'sy = "Bye."'),
            r"flow\.toml:9: steps\.bye\.sy: is not a step key",
        ),
        (
            GOOD.replace('["en"]', '["en", "ko"]').replace('"Press 1."', '{ ko = "1번." }'),
            r"flow\.toml:5: steps\.menu\.say: has no text for en \(the default language\)",
        ),
        (
            GOOD.replace('"1" = {', '"12" = {'),
            r"flow\.toml:6: steps\.menu\.12: a choice is named by one key",
        ),
    ],
)
def test_a_broken_flow_names_file_line_and_key(tmp_path: Path, broken: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        load_flow(write(tmp_path, broken))


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"flow\.toml: Invalid value"):
        load_flow(write(tmp_path, "[flow]\nlanguages = [\n"))
