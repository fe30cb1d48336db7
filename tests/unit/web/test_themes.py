"""Every shipped theme meets WCAG 2.2 AA contrast; a theme that does not is refused, naming
the failing pair; the contrast arithmetic matches WCAG's published figures."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from contactd.errors import ValidationError
from contactd.web.themes import (
    CONTROL_PAIRS,
    PROPERTIES,
    TEXT_PAIRS,
    ThemeStore,
    contrast,
    failing_pairs,
    parse,
)

THEMES = Path(__file__).resolve().parents[3] / "web" / "themes"
SHIPPED = sorted(p.stem for p in THEMES.glob("*.css"))


def test_at_least_twelve_themes_ship_with_the_required_kinds() -> None:
    assert len(SHIPPED) >= 12
    assert {"light", "dark", "high-contrast", "colour-safe-light", "colour-safe-dark"} <= set(
        SHIPPED
    )


@pytest.mark.parametrize("theme_id", SHIPPED)
def test_every_shipped_theme_meets_wcag_aa(theme_id: str) -> None:
    theme = parse(theme_id, (THEMES / f"{theme_id}.css").read_text())
    for fg, bg in TEXT_PAIRS:
        assert contrast(theme.colours[fg], theme.colours[bg]) >= 4.5, (theme_id, fg, bg)
    for fg, bg in CONTROL_PAIRS:
        assert contrast(theme.colours[fg], theme.colours[bg]) >= 3.0, (theme_id, fg, bg)
    assert set(theme.colours) == set(PROPERTIES)


def test_contrast_matches_wcag_figures() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#fff", "#fff") == pytest.approx(1.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just fails AA
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # just passes


def _css(**changes: str) -> str:
    colours = parse("light", (THEMES / "light.css").read_text()).colours | changes
    return ":root { " + " ".join(f"--{k}: {v};" for k, v in colours.items()) + " }"


def test_a_failing_theme_is_refused_with_the_pair_named() -> None:
    with pytest.raises(ValidationError) as refused:
        parse("pale", _css(muted="#aaaaaa"))
    assert "--muted #aaaaaa on --surface #ffffff" in refused.value.message
    assert "needs 4.5:1" in refused.value.message
    assert failing_pairs(parse("light", _css()).colours) == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (":root { --bg: red; }", "--bg is 'red', not a colour"),
        (":root { --bg: #fff; }", "lacks --surface"),
        (":root { --shadow: #fff; }", "unknown property --shadow"),
        ("body { --bg: #fff; }", "one ':root"),
        (":root { --bg: #fff; } body { color: red }", "one ':root"),
    ],
)
def test_a_malformed_theme_says_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse("odd", text)


def test_an_added_theme_is_stored_and_a_dropped_failing_file_is_not_offered(
    tmp_path: Path,
) -> None:
    store = ThemeStore(THEMES, tmp_path / "themes")
    added = asyncio.run(store.add("teal", "Teal", _css(accent="#00676b")))
    assert added.label == "Teal" and (tmp_path / "themes" / "teal.css").is_file()
    (tmp_path / "themes" / "pale.css").write_text(_css(text="#bbbbbb"))
    offered = asyncio.run(store.all())
    assert "teal" in offered and "pale" not in offered and "light" in offered
    with pytest.raises(ValidationError, match="already exists"):
        asyncio.run(store.add("light", "", _css()))


def test_the_panel_css_takes_every_colour_from_the_theme() -> None:
    """A colour written into panel.css would escape the themes and their contrast check."""
    css = (THEMES.parent / "static" / "panel.css").read_text()
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    literal = re.findall(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?)\(", css)
    assert not literal, literal
    used = set(re.findall(r"var\(--([a-z-]+)\)", css)) - {"radius", "gap"}
    assert used <= set(PROPERTIES), used - set(PROPERTIES)
