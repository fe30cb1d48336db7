"""Themes are data: one small CSS file of custom properties each, checked for contrast.

A theme file is `<id>.css` holding one `:root { --name: #rrggbb; … }` block, its first comment
the name people see. The panel ships its themes in web/themes; an admin adds one from the
Themes page or by dropping a file into `<general.data_dir>/themes`. Every theme, shipped or
added, must give every property in PROPERTIES and meet WCAG 2.2 AA for each pair in
TEXT_PAIRS (4.5:1, text) and CONTROL_PAIRS (3:1, control borders and focus rings, 1.4.11); one
that does not is refused, naming the failing pair.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from contactd.errors import ValidationError

log = logging.getLogger(__name__)

PROPERTIES = {
    "bg": "page background",
    "surface": "cards, tables and fields",
    "text": "text",
    "muted": "secondary text",
    "line": "separators (decorative)",
    "control": "borders of fields and buttons",
    "accent": "links and primary buttons",
    "accent-text": "text on primary buttons",
    "focus": "keyboard focus ring",
    "ok": "success messages",
    "error": "error messages",
    "warn": "warnings",
}
TEXT_RATIO = 4.5
CONTROL_RATIO = 3.0
# (foreground, background): text must reach 4.5:1 on each background it is drawn on.
TEXT_PAIRS = tuple(
    [
        (fg, bg)
        for fg in ("text", "muted", "accent", "ok", "error", "warn")
        for bg in ("bg", "surface")
    ]
    + [("accent-text", "accent")]
)
# Non-text contrast (WCAG 1.4.11): what shows a control and where the focus is, 3:1.
CONTROL_PAIRS = (("control", "surface"), ("control", "bg"), ("focus", "bg"), ("focus", "surface"))
SYSTEM = "system"  # no choice made: light, or dark when the device asks for it
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_HEX_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_DECL_RE = re.compile(r"--([a-z][a-z0-9-]*)\s*:\s*([^;}]*?)\s*(?:;|(?=}))")
_BLOCK_RE = re.compile(
    r"^\s*(?:/\*(?P<label>.*?)\*/)?\s*:root\s*\{(?P<body>[^{}]*)\}\s*$", re.DOTALL
)
MAX_BYTES = 4096


@dataclass(frozen=True)
class Theme:
    id: str
    label: str
    colours: dict[str, str]
    shipped: bool

    def css(self) -> str:
        body = "\n".join(f"  --{name}: {self.colours[name]};" for name in PROPERTIES)
        return f"/* {self.label} */\n:root {{\n{body}\n}}\n"

    def root_block(self, selector: str = ":root") -> str:
        body = " ".join(f"--{name}: {self.colours[name]};" for name in PROPERTIES)
        return f"{selector} {{ {body} }}"


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(hex_colour: str) -> float:
    """WCAG 2.2 relative luminance of #rgb or #rrggbb."""
    digits = hex_colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def failing_pairs(colours: dict[str, str]) -> list[str]:
    """Every pair below its WCAG 2.2 AA ratio, in words (which colours, the ratio, the need)."""
    failures = []
    for pairs, needed in ((TEXT_PAIRS, TEXT_RATIO), (CONTROL_PAIRS, CONTROL_RATIO)):
        for fg, bg in pairs:
            ratio = contrast(colours[fg], colours[bg])
            if ratio < needed:
                failures.append(
                    f"--{fg} {colours[fg]} on --{bg} {colours[bg]}: "
                    f"{ratio:.2f}:1 (needs {needed}:1)"
                )
    return failures


def parse(theme_id: str, text: str, *, shipped: bool = False) -> Theme:
    """A checked theme from a file's text; ValidationError naming what is wrong."""
    if not ID_RE.fullmatch(theme_id) or theme_id == SYSTEM:
        raise ValidationError(
            f"theme id {theme_id!r} must be 1-40 lower-case letters, digits or '-'"
            f" (and not {SYSTEM!r})",
            field="id",
        )
    if len(text.encode()) > MAX_BYTES:
        raise ValidationError(f"theme {theme_id!r} is over {MAX_BYTES} bytes", field="css")
    block = _BLOCK_RE.match(text)
    if block is None:
        raise ValidationError(
            f"theme {theme_id!r} must be one ':root {{ --name: #rrggbb; … }}' block,"
            " optionally after a /* name */ comment",
            field="css",
        )
    colours: dict[str, str] = {}
    for name, value in _DECL_RE.findall(block["body"]):
        if name not in PROPERTIES:
            raise ValidationError(f"theme {theme_id!r}: unknown property --{name}", field="css")
        if not _HEX_RE.fullmatch(value):
            raise ValidationError(
                f"theme {theme_id!r}: --{name} is {value!r}, not a colour like #1b1f24", field="css"
            )
        colours[name] = value.lower()
    missing = [f"--{name}" for name in PROPERTIES if name not in colours]
    if missing:
        raise ValidationError(f"theme {theme_id!r} lacks {', '.join(missing)}", field="css")
    failures = failing_pairs(colours)
    if failures:
        raise ValidationError(
            f"theme {theme_id!r} fails WCAG 2.2 AA contrast: {'; '.join(failures)}",
            field="css",
            failures=failures,
        )
    label = " ".join((block["label"] or "").split())[:60] or theme_id
    return Theme(theme_id, label, colours, shipped)


class ThemeStore:
    """The shipped themes and those added under `<data_dir>/themes` (read on each listing, so a
    dropped file appears without a restart; a failing one is logged and not offered)."""

    def __init__(self, shipped_dir: Path, added_dir: Path) -> None:
        self.shipped_dir = shipped_dir
        self.added_dir = added_dir
        self._cache: dict[Path, tuple[tuple[tuple[str, int, int], ...], list[Theme]]] = {}

    def _load(self) -> dict[str, Theme]:
        themes: dict[str, Theme] = {}
        for folder, shipped in ((self.shipped_dir, True), (self.added_dir, False)):
            for theme in self._folder(folder, shipped):
                if theme.id in themes:
                    log.warning(
                        "theme file ignored: a shipped theme has its id", extra={"theme": theme.id}
                    )
                    continue
                themes[theme.id] = theme
        return themes

    def _folder(self, folder: Path, shipped: bool) -> list[Theme]:
        """A folder's valid themes, parsed again only when a file in it changed (so a refused
        file is logged once, not on every page)."""
        if not folder.is_dir():
            return []
        paths = sorted(folder.glob("*.css"))
        signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        cached = self._cache.get(folder)
        if cached is not None and cached[0] == signature:
            return cached[1]
        found = []
        for path in paths:
            try:
                found.append(parse(path.stem, path.read_text("utf-8"), shipped=shipped))
            except (ValidationError, OSError, UnicodeDecodeError) as exc:
                log.warning("theme file refused", extra={"path": str(path), "error": str(exc)})
        self._cache[folder] = (signature, found)
        return found

    async def all(self) -> dict[str, Theme]:
        return await asyncio.to_thread(self._load)

    async def get(self, theme_id: str) -> Theme | None:
        return (await self.all()).get(theme_id)

    async def add(self, theme_id: str, label: str, body: str) -> Theme:
        """Checks and stores an admin's theme; refuses a taken id or a failing theme."""
        text = body if body.lstrip().startswith(("/*", ":root")) else f":root {{ {body} }}"
        if label.strip() and not text.lstrip().startswith("/*"):
            text = f"/* {label.strip().replace('*/', '')} */\n{text}"
        theme = parse(theme_id, text)
        if theme_id in await self.all():
            raise ValidationError(f"a theme {theme_id!r} already exists", field="id")
        await asyncio.to_thread(self._write, theme)
        log.info("theme added", extra={"theme": theme_id})
        return theme

    def _write(self, theme: Theme) -> None:
        self.added_dir.mkdir(parents=True, exist_ok=True)
        path = self.added_dir / f"{theme.id}.css"
        partial = path.with_suffix(".css.tmp")
        partial.write_text(theme.css(), "utf-8")
        partial.replace(path)
