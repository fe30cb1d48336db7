"""One import row in, one validated candidate contact (or the reasons it is invalid) out.

Pure CPU work with no I/O, run in a worker thread by the importer; the phone normaliser is the
hot spot, hence contactd.crm.phones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, NamedTuple

from contactd.crm.errors import CustomFieldError
from contactd.crm.fields import FieldDef, validate
from contactd.crm.imports.mapping import ColumnMap
from contactd.crm.phones import PhoneNormaliser
from contactd.crm.searchtext import build_search_text
from contactd.enums import PhoneType

EMAIL: Final = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]{2,}")
SPLIT_MULTI: Final = re.compile(r"\s*[;,]\s*")
SPLIT_TAGS: Final = re.compile(r"\s*[;,|]\s*")
LIMITS: Final = {
    "first_name": 100,
    "last_name": 100,
    "organisation": 200,
    "job_title": 200,
    "language": 16,
}
ADDRESS_LIMITS: Final = {"street": 300, "city": 120, "postal_code": 20}
_MEANINGFUL: Final = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    reason: str
    value: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (RowError, (self.row, self.column, self.reason, self.value))


class Phone(NamedTuple):
    """A validated number as stored: plain values, cheap to send between processes."""

    e164: str
    type: str  # PhoneType value
    region: str | None
    time_zones: str  # space-separated


@dataclass(slots=True)
class ContactRow:
    row: int
    first_name: str = ""
    last_name: str = ""
    organisation: str = ""
    job_title: str = ""
    language: str = ""
    notes: str = ""
    owner_id: int | None = None
    phones: list[Phone] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)
    address: dict[str, str] | None = None
    search_name: str = ""
    search_text: str = ""
    keys: list[str] = field(default_factory=list)

    def index(self) -> None:
        """Fill what the writer needs, here in the worker: index text and dedupe keys."""
        self.keys = [p.e164 for p in self.phones] + self.emails
        self.search_name, self.search_text = build_search_text(
            first_name=self.first_name, last_name=self.last_name, organisation=self.organisation,
            job_title=self.job_title, phones=[p.e164 for p in self.phones], emails=self.emails,
            notes=self.notes,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a plain tuple of its fields: a batch crosses from the worker process,
        # and the default reduction of a slots dataclass costs ~18 µs a row each way.
        return (ContactRow, tuple(getattr(self, name) for name in _ROW_FIELDS))

    def dedupe_keys(self) -> list[str]:
        """What identifies this contact for dedupe: its numbers and e-mails."""
        return self.keys

    def absorb(self, other: ContactRow) -> None:
        """Take what a duplicate row adds: numbers, e-mails, tags, empty fields."""
        known = {p.e164 for p in self.phones}
        self.phones.extend(p for p in other.phones if p.e164 not in known)
        self.emails.extend(e for e in other.emails if e not in self.emails)
        self.tags.extend(t for t in other.tags if t not in self.tags)
        for name in ("first_name", "last_name", "organisation", "job_title", "language", "notes"):
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))
        for key, value in other.custom.items():
            self.custom.setdefault(key, value)
        if self.address is None:
            self.address = other.address
        if self.owner_id is None:
            self.owner_id = other.owner_id
        self.index()


_ROW_FIELDS: Final = tuple(f.name for f in fields(ContactRow))


class RowValidator:
    """Turns raw cells into ContactRow or RowErrors with the column's header and the reason."""

    def __init__(
        self,
        columns: ColumnMap,
        *,
        normaliser: PhoneNormaliser,
        custom_fields: Sequence[FieldDef] = (),
        users: Mapping[str, int] | None = None,
    ) -> None:
        self.columns = columns
        self.normaliser = normaliser
        self.custom_fields = tuple(custom_fields)
        self.users = {k.casefold(): v for k, v in (users or {}).items()}
        self._single = {
            t: cols[0]
            for t in (*LIMITS, *ADDRESS_LIMITS, "full_name", "notes", "owner", "country")
            if (cols := columns.columns_for(t))
        }
        self._phones = [(i, PhoneType.FIXED) for i in columns.columns_for("phone")] + [
            (i, PhoneType.MOBILE) for i in columns.columns_for("mobile")
        ]
        self._emails = columns.columns_for("email")
        self._tags = columns.columns_for("tags")
        self._custom = [
            (i, t.removeprefix("custom:"))
            for i, t in enumerate(columns.targets)
            if t is not None and t.startswith("custom:")
        ]

    def _get(self, cells: Sequence[str], target: str) -> str:
        index = self._single.get(target)
        if index is None or index >= len(cells):
            return ""
        return cells[index].strip()

    def check(self, number: int, cells: Sequence[str]) -> ContactRow | list[RowError] | None:
        """None for an empty row; the candidate; or every problem the row has."""
        if not any(_MEANINGFUL.search(c) for c in cells):
            return None  # blank, or only stray separators and punctuation
        headers = self.columns.headers
        errors: list[RowError] = []
        row = ContactRow(number)
        for name, limit in LIMITS.items():
            value = self._get(cells, name)
            if len(value) > limit:
                errors.append(RowError(number, headers[self._single[name]],
                                       f"longer than {limit} characters", value[:80]))
            elif value:
                setattr(row, name, value)
        row.notes = self._get(cells, "notes")
        if not row.first_name and not row.last_name and (full := self._get(cells, "full_name")):
            first, _, last = full.rpartition(" ")
            row.first_name, row.last_name = first[:100], last[:100]
        for index, _kind in self._phones:
            raw = cells[index] if index < len(cells) else ""
            for part in SPLIT_MULTI.split(raw.strip()) if raw.strip() else ():
                parsed = self.normaliser.try_parse(part)
                if isinstance(parsed, str):
                    errors.append(RowError(number, headers[index], parsed, part))
                elif all(p.e164 != parsed.e164 for p in row.phones):
                    row.phones.append(Phone(parsed.e164, parsed.type.value, parsed.region,
                                            " ".join(parsed.time_zones)))
        for index in self._emails:
            raw = cells[index].strip() if index < len(cells) else ""
            for part in SPLIT_MULTI.split(raw) if raw else ():
                if EMAIL.fullmatch(part) is None:
                    errors.append(RowError(number, headers[index], "not an e-mail address", part))
                elif (address := part.lower()) not in row.emails:
                    row.emails.append(address)
        for index in self._tags:
            raw = cells[index].strip() if index < len(cells) else ""
            for tag in SPLIT_TAGS.split(raw) if raw else ():
                if len(tag) > 64:
                    errors.append(RowError(number, headers[index], "tag longer than 64", tag))
                elif tag and tag not in row.tags:
                    row.tags.append(tag)
        if owner := self._get(cells, "owner"):
            owner_id = self.users.get(owner.casefold())
            if owner_id is None:
                errors.append(RowError(number, headers[self._single["owner"]],
                                       "no such user", owner))
            row.owner_id = owner_id
        self._check_custom(number, cells, row, errors)
        self._check_address(number, cells, row, errors)
        if not errors and not (row.first_name or row.last_name or row.organisation
                               or row.phones or row.emails):
            errors.append(RowError(number, "", "no name, company, phone or e-mail"))
        if errors:
            return errors
        # Computed here, in the worker thread, so the event loop only writes.
        row.index()
        return row

    def _check_custom(
        self, number: int, cells: Sequence[str], row: ContactRow, errors: list[RowError]
    ) -> None:
        if not self.custom_fields:
            return
        values = {key: cells[i] if i < len(cells) else "" for i, key in self._custom}
        try:
            row.custom = validate(self.custom_fields, values)
        except CustomFieldError as exc:
            problems: dict[str, str] = exc.details.get("problems", {})
            by_key = {key: self.columns.headers[i] for i, key in self._custom}
            for key, reason in problems.items():
                errors.append(RowError(number, by_key.get(key, key), reason,
                                       str(values.get(key, ""))[:80]))

    def _check_address(
        self, number: int, cells: Sequence[str], row: ContactRow, errors: list[RowError]
    ) -> None:
        parts = {k: self._get(cells, k) for k in ("street", "city", "postal_code", "country")}
        if not any(parts.values()):
            return
        for name, limit in ADDRESS_LIMITS.items():
            if len(parts[name]) > limit:
                errors.append(RowError(number, self.columns.headers[self._single[name]],
                                       f"longer than {limit} characters", parts[name][:80]))
        country = parts["country"].upper()
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            errors.append(RowError(number, self.columns.headers[self._single["country"]],
                                   "country must be a 2-letter code", parts["country"]))
        parts["country"] = country
        row.address = parts
