"""Custom fields defined per installation (text, number, date, choice): pure validation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from contactd.crm.errors import CustomFieldError
from contactd.enums import CustomFieldType

MAX_TEXT: int = 2000


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str
    label: str
    type: CustomFieldType
    choices: tuple[str, ...] = ()
    required: bool = False


def _number(raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("not a number")
    if isinstance(raw, int | float):
        return raw
    text = str(raw).strip().replace("\u00a0", "").replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # "12,5" as written in much of Europe
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a number")
    return int(value) if value == value.to_integral_value() else float(value)


_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y")


def _date(raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    text = str(raw).strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)")


def coerce(definition: FieldDef, raw: Any) -> Any:
    """The stored (JSON) form of one value; ValueError with a reason when it does not fit."""
    if definition.type is CustomFieldType.TEXT:
        text = str(raw)
        if len(text) > MAX_TEXT:
            raise ValueError(f"longer than {MAX_TEXT} characters")
        return text
    if definition.type is CustomFieldType.NUMBER:
        return _number(raw)
    if definition.type is CustomFieldType.DATE:
        return _date(raw)
    text = str(raw).strip()
    for choice in definition.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise ValueError(f"{raw!r} is not one of {', '.join(definition.choices)}")


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def validate(
    definitions: Iterable[FieldDef], values: Mapping[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """Coerce every value; unknown keys, missing required ones and bad values are errors.

    `partial` skips the required check (updates that touch only some fields)."""
    by_key = {d.key: d for d in definitions}
    out: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key, raw in values.items():
        definition = by_key.get(key)
        if definition is None:
            problems[key] = "no such custom field"
            continue
        if _empty(raw):
            continue
        try:
            out[key] = coerce(definition, raw)
        except ValueError as exc:
            problems[key] = str(exc)
    if not partial:
        for key, definition in by_key.items():
            if definition.required and key not in out and key not in problems:
                problems[key] = "required"
    if problems:
        first = next(iter(problems))
        raise CustomFieldError(
            f"custom field {first!r}: {problems[first]}", field=first, problems=problems
        )
    return out
