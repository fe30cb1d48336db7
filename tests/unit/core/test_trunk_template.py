"""The trunk every campaign call dials is checked when the settings load, not at each call."""

from __future__ import annotations

import pytest

from contactd.config import load_settings
from contactd.errors import ConfigError

KEY = "CONTACTD_ASTERISK__TRUNK_DIAL_TEMPLATE"


@pytest.mark.parametrize("template", [
    "PJSIP/{number}@trunk", "Local/{number}@contactd-test-world", "SIP/carrier/{number}",
])
def test_a_dial_string_with_the_number_is_accepted(template: str) -> None:
    assert load_settings(None, {KEY: template}).asterisk.trunk_dial_template == template


@pytest.mark.parametrize(("template", "why"), [
    ("PJSIP/5551234@trunk", r"must contain \{number\}"),
    ("PJSIP/{number}@{host}", r"only \{number\} may be in braces"),
    ("PJSIP/{number}@trunk,30", r"must be TECH/resource"),
    ("PJSIP/{number}@trunk;x", r"must be TECH/resource"),
    ("{number}", r"must be TECH/resource"),
])
def test_a_broken_template_is_named_at_load(template: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"asterisk\.trunk_dial_template.*{why}"):
        load_settings(None, {KEY: template})
