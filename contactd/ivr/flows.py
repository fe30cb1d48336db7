"""Declarative IVR flows: a TOML file of steps, checked at load with errors naming file, line, key.

A step says something (per language; a language without its own text falls back to the flow's
first, default, language), then either offers choices (a key or a grammar word each), offers
the languages (`languages = { "1" = "en", "2" = "ko" }`: the caller's choice sets the language
of every later prompt), collects an answer into a field, or takes an action. Prompts are
plain text made by TTS at start; `recordings` may replace any of them with a WAV per language.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from contactd.errors import ConfigError


class Collect(enum.StrEnum):
    DIGITS = "digits"
    YES_NO = "yes_no"
    FREE = "free"  # recorded, transcribed off the real-time path
    TIME = "time"  # a callback time keyed (HHMM, MMDDHHMM) or said and confirmed (ivr.when)


class Action(enum.StrEnum):
    TRANSFER = "transfer"  # to an agent queue (CONTACTD_ROUTE=queue)
    CALLBACK = "callback"  # a callback task for the team
    TASK = "task"  # a task for the team, the answers in its description
    HANGUP = "hangup"


@dataclass(frozen=True)
class Choice:
    key: str
    next: str
    words: dict[str, list[str]] = field(default_factory=dict)  # language → grammar words


@dataclass(frozen=True)
class Step:
    name: str
    say: dict[str, str]
    say_known: dict[str, str] = field(default_factory=dict)  # when the caller is a contact
    choices: tuple[Choice, ...] = ()
    collect: Collect | None = None
    field: str = ""
    max_digits: int = 1
    action: Action | None = None
    queue: str = ""
    team: str = ""
    next: str = ""
    no_next: str = ""  # yes_no: where a "no" goes (empty: the flow ends politely)
    # A language menu: key → language, and key → words that choose it by voice.
    languages: dict[str, str] = dataclasses.field(default_factory=dict)
    words: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # Action steps: a confirmation queued through the outbox, text per language.
    confirm_sms: dict[str, str] = dataclasses.field(default_factory=dict)
    confirm_email: dict[str, str] = dataclasses.field(default_factory=dict)
    contact_field: str = ""  # also store the answer in this custom field of the contact


@dataclass(frozen=True)
class Flow:
    name: str
    path: Path
    languages: tuple[str, ...]
    voices: dict[str, str]  # language → espeak-ng voice; a stand-in is named here, explicitly
    start: str
    steps: dict[str, Step]
    yes_words: dict[str, list[str]] = field(default_factory=dict)
    no_words: dict[str, list[str]] = field(default_factory=dict)

    def prompts(self) -> list[tuple[str, str]]:
        """Every (language, text) this flow can say, for pre-building at start."""
        found: list[tuple[str, str]] = []
        for step in self.steps.values():
            for texts in (step.say, step.say_known):
                for language, text in texts.items():
                    if "{" not in text:  # texts with contact fields are made per call
                        found.append((language, text))
        return found


def _line_of(text: str, table: str, key: str) -> int:
    """Best-effort line of `key` inside `[table]` (tomllib keeps no positions)."""
    lines = text.splitlines()
    start = 0
    if table:
        header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
        for number, line in enumerate(lines):
            if header.match(line):
                start = number
                break
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n].lstrip().startswith("[")),
        len(lines),
    )
    at_start = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
    inline = re.compile(r"(^|[{,\s])\"?" + re.escape(key) + r"\"?\s*=")  # inside { … }
    for pattern in (at_start, inline):
        for number in range(start, end):
            if pattern.search(lines[number]):
                return number + 1
    return start + 1


class _Checker:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, table: str, key: str, problem: str) -> ConfigError:
        line = _line_of(self.text, table, key)
        where = f"{table}.{key}" if table else key
        return ConfigError(
            f"{self.path}:{line}: {where}: {problem}", path=str(self.path), line=line, key=where
        )

    def texts(self, table: str, key: str, value: Any, languages: tuple[str, ...]) -> dict[str, str]:
        if isinstance(value, str):
            return dict.fromkeys(languages, value)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(table, key, "must be text or a table of text per language")
        # Other languages fall back to the default's text (and voice); the default must exist.
        if languages[0] not in value:
            raise self.fail(table, key, f"has no text for {languages[0]} (the default language)")
        return {str(k): str(v) for k, v in value.items()}


def load_flow(path: Path) -> Flow:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read flow: {exc.strerror}", path=str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}", path=str(path)) from exc
    check = _Checker(path, text)
    head = data.get("flow")
    if not isinstance(head, dict):
        raise check.fail("", "flow", "a [flow] table is required")
    languages = head.get("languages", ["en"])
    if (
        not isinstance(languages, list)
        or not languages
        or not all(isinstance(x, str) for x in languages)
    ):
        raise check.fail("flow", "languages", "must be a non-empty list of language codes")
    langs = tuple(languages)
    voices = head.get("voices", {})
    if not isinstance(voices, dict):
        raise check.fail("flow", "voices", "must map language → espeak-ng voice")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, dict) or not raw_steps:
        raise check.fail("", "steps", "at least one [steps.NAME] table is required")
    steps: dict[str, Step] = {}
    for name, raw in raw_steps.items():
        steps[name] = _step(check, name, raw, langs)
    start = head.get("start", next(iter(steps)))
    if start not in steps:
        raise check.fail("flow", "start", f"names no step ({start!r})")
    for step in steps.values():
        table = f"steps.{step.name}"
        targets = [("next", step.next), ("no_next", step.no_next)]
        targets += [(c.key, c.next) for c in step.choices]
        for key, target in targets:
            if target and target not in steps:
                raise check.fail(table, key, f"goes to {target!r}, which is not a step")
    return Flow(
        name=str(head.get("name", path.stem)),
        path=path,
        languages=langs,
        voices={str(k): str(v) for k, v in voices.items()},
        start=start,
        steps=steps,
        yes_words=_words(check, head.get("yes", {}), "yes"),
        no_words=_words(check, head.get("no", {}), "no"),
    )


def _words(check: _Checker, value: Any, key: str, table: str = "flow") -> dict[str, list[str]]:
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise check.fail(table, key, "must map language → list of words")
    return {str(k): [str(w) for w in v] for k, v in value.items()}


def _step(check: _Checker, name: str, raw: Any, langs: tuple[str, ...]) -> Step:
    table = f"steps.{name}"
    if not isinstance(raw, dict):
        raise check.fail("steps", name, "must be a table")
    known = {
        "say",
        "say_known",
        "choices",
        "collect",
        "field",
        "max_digits",
        "action",
        "queue",
        "team",
        "next",
        "no_next",
        "contact_field",
        "languages",
        "words",
        "confirm_sms",
        "confirm_email",
    }
    for key in raw:
        if key not in known:
            raise check.fail(table, key, f"is not a step key (use {', '.join(sorted(known))})")
    say = check.texts(table, "say", raw.get("say", ""), langs)
    say_known = (
        check.texts(table, "say_known", raw["say_known"], langs) if "say_known" in raw else {}
    )
    choices: list[Choice] = []
    for key, choice in raw.get("choices", {}).items():
        if not re.fullmatch(r"[0-9*#]", key):
            raise check.fail(table, key, "a choice is named by one key: 0-9, * or #")
        if not isinstance(choice, dict) or not isinstance(choice.get("next"), str):
            raise check.fail(table, key, 'a choice needs next = "step"')
        choices.append(Choice(key, choice["next"], _words(check, choice.get("words", {}), key)))
    collect = None
    if "collect" in raw:
        try:
            collect = Collect(raw["collect"])
        except ValueError:
            raise check.fail(table, "collect", f"must be one of {', '.join(Collect)}") from None
        if not isinstance(raw.get("field"), str) or not raw["field"]:
            raise check.fail(table, "collect", 'needs field = "name" to store the answer in')
    menu = _language_menu(check, table, raw, langs)
    confirms = {
        key: check.texts(table, key, raw[key], langs)
        for key in ("confirm_sms", "confirm_email")
        if key in raw
    }
    if confirms and "action" not in raw:
        raise check.fail(table, next(iter(confirms)), "is for steps with an action")
    for key in ("no_next", "contact_field"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise check.fail(table, key, "must be a non-empty name")
    if "no_next" in raw and collect is not Collect.YES_NO:
        raise check.fail(table, "no_next", 'is for collect = "yes_no" steps')
    if "contact_field" in raw and collect is None:
        raise check.fail(table, "contact_field", "is for steps that collect an answer")
    action = None
    if "action" in raw:
        try:
            action = Action(raw["action"])
        except ValueError:
            raise check.fail(table, "action", f"must be one of {', '.join(Action)}") from None
        if action is Action.TRANSFER and not raw.get("queue"):
            raise check.fail(table, "action", 'transfer needs queue = "name"')
    if sum(x is not None and x != [] for x in (collect, action, choices or None, menu or None)) > 1:
        raise check.fail(table, "say", "a step has choices, languages, collect or action: one")
    max_digits = raw.get("max_digits", 8 if collect is Collect.TIME else 1)
    if not isinstance(max_digits, int) or not 1 <= max_digits <= 32:
        raise check.fail(table, "max_digits", "must be a whole number from 1 to 32")
    return Step(
        name=name,
        say=say,
        say_known=say_known,
        choices=tuple(choices),
        collect=collect,
        field=str(raw.get("field", "")),
        max_digits=max_digits,
        action=action,
        queue=str(raw.get("queue", "")),
        team=str(raw.get("team", "")),
        next=str(raw.get("next", "")),
        no_next=str(raw.get("no_next", "")),
        contact_field=str(raw.get("contact_field", "")),
        languages=menu,
        confirm_sms=confirms.get("confirm_sms", {}),
        confirm_email=confirms.get("confirm_email", {}),
        words=_words(check, raw.get("words", {}), "words", table) if menu else {},
    )


def _language_menu(
    check: _Checker, table: str, raw: dict[str, Any], langs: tuple[str, ...]
) -> dict[str, str]:
    if "words" in raw and "languages" not in raw:
        raise check.fail(table, "words", "is for language menus (languages = { ... })")
    menu = raw.get("languages")
    if menu is None:
        return {}
    if not isinstance(menu, dict) or not menu:
        raise check.fail(table, "languages", 'must map a key to a language, e.g. { "1" = "en" }')
    for key, language in menu.items():
        if not re.fullmatch(r"[0-9*#]", key):
            raise check.fail(table, "languages", f"{key!r}: a choice is one key: 0-9, * or #")
        if language not in langs:
            raise check.fail(table, "languages", f"{language!r} is not one of the flow's languages")
    if not raw.get("next"):
        raise check.fail(table, "languages", 'a language menu needs next = "step"')
    return {str(k): str(v) for k, v in menu.items()}


def shipped_flow(name: str) -> Flow:
    """A flow shipped with contactd (`intake`, `survey`)."""
    ref = resources.files("contactd.ivr") / "flows" / f"{name}.toml"
    with resources.as_file(ref) as path:
        if not path.exists():
            raise ConfigError(f"no shipped IVR flow {name!r}")
        return load_flow(path)
