"""One import row in, one validated candidate contact (or the reasons it is invalid) out.

Pure CPU work with no I/O, run in a worker thread or process by the importer. A valid row
comes out as a `Candidate`, a flat tuple of plain values: cheap to build, and cheap to send
from the worker process (marshal) to the writer. Rows with any problem take the complete,
slower path that collects every reason; the unit tests hold both paths to the same answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from contactd.crm.bulk_phones import PhoneNormaliser, StoredPhone
from contactd.crm.custom_fields import FieldDef, validate
from contactd.crm.errors import CustomFieldError
from contactd.crm.imports.mapping import ColumnMap
from contactd.crm.searchtext import build_search_text, name_key, phone_forms, with_folded
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
NOTES_LIMIT: Final = 128 * 1024  # characters: a longer notes cell refuses its row
_MEANINGFUL: Final = re.compile(r"\w")
_COUNTRY: Final = re.compile(r"[A-Z]{2}")
# Single-column targets in the order the fast path unpacks them.
_SINGLE: Final = ("first_name", "last_name", "organisation", "job_title", "language",
                  "full_name", "notes", "owner", "street", "city", "postal_code", "country")

# A valid row as the writer takes it: its insert parameters, each led by the row number in
# the file, from which the writer makes the contact id (row + an offset per batch). Plain
# tuples, strings, ints, bools and None only: a batch crosses processes by marshal.
ContactParams = tuple[
    int, str, str, str | None, str, str, int | None, str, str, str, str, str
]  # row, first, last, organisation key (case-folded), job title, language ("" for the
#    default), owner id, notes, custom fields as JSON, search_name, search_text, name_key
PhoneParams = tuple[int, str, str, str | None, str, bool]  # row, e164, type, region, zones, 1st
EmailParams = tuple[int, str, bool]  # row, address (lower case), first
TagParams = tuple[int, str]  # row, tag name
AddressParams = tuple[int, str, str, str, str]  # row, street, city, postal code, country
Candidate = tuple[
    ContactParams,
    tuple[PhoneParams, ...],
    tuple[EmailParams, ...],
    tuple[TagParams, ...],
    AddressParams | None,
    str,  # organisation name as written
    tuple[str, ...],  # dedupe keys: numbers then e-mails
]


_COUNTRY_CODE_SIZE: dict[str, int] = {}  # first three digits of an E.164 -> country code size


def _phone_forms(e164: str) -> list[str]:
    """searchtext.phone_forms, remembering the country code size by the leading digits (all
    that phone_forms looks at to find it)."""
    digits = e164.lstrip("+")
    head = digits[:3]
    size = _COUNTRY_CODE_SIZE.get(head)
    if size is None:
        forms = phone_forms(e164)
        _COUNTRY_CODE_SIZE[head] = len(digits) - len(forms[1]) if len(forms) == 3 else 0
        return forms
    if size:
        national = digits[size:]
        return [digits, national, "0" + national]
    return [digits]


def search_texts(
    first: str, last: str, organisation: str, job_title: str, numbers: list[str],
    emails: list[str], notes: str,
) -> tuple[str, str]:
    """searchtext.build_search_text for the import's hot path (same answers, unit-tested)."""
    name = f"{first} {last} {job_title}" if first and last and job_title else " ".join(
        [w for w in (first, last, job_title) if w]
    )
    words = [organisation] if organisation else []
    for e164 in numbers:
        words += _phone_forms(e164)
    words += emails
    if notes:
        words.append(notes)
    text = " ".join(words).lower()
    name = name.lower()
    if text.isascii() and name.isascii():
        return name, text
    return with_folded(name), with_folded(text)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    reason: str
    value: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (RowError, (self.row, self.column, self.reason, self.value))


@dataclass(slots=True)
class ContactRow:
    """A row as fields, for the rare work on whole rows: folding a repeat into its first row,
    updating a stored contact, and the complete check."""

    row: int
    first_name: str = ""
    last_name: str = ""
    organisation: str = ""
    job_title: str = ""
    language: str = ""
    notes: str = ""
    owner_id: int | None = None
    phones: list[StoredPhone] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)
    address: dict[str, str] | None = None
    search_name: str = ""
    search_text: str = ""
    keys: list[str] = field(default_factory=list)

    def index(self) -> None:
        """Fill what the writer needs, here in the worker: index text and dedupe keys."""
        self.keys = [p[0] for p in self.phones] + self.emails
        self.search_name, self.search_text = build_search_text(
            first_name=self.first_name, last_name=self.last_name, organisation=self.organisation,
            job_title=self.job_title, phones=[p[0] for p in self.phones], emails=self.emails,
            notes=self.notes,
        )

    def candidate(self) -> Candidate:
        r, a = self.row, self.address
        return (
            (r, self.first_name, self.last_name, self.organisation.casefold() or None,
             self.job_title, self.language, self.owner_id, self.notes,
             json.dumps(self.custom) if self.custom else "{}", self.search_name,
             self.search_text, name_key(self.first_name, self.last_name, self.organisation)),
            tuple((r, *p, i == 0) for i, p in enumerate(self.phones)),
            tuple((r, e, i == 0) for i, e in enumerate(self.emails)),
            tuple((r, t) for t in self.tags),
            None if a is None else (r, a["street"], a["city"], a["postal_code"], a["country"]),
            self.organisation,
            tuple(self.keys),
        )

    @classmethod
    def from_candidate(cls, c: Candidate) -> ContactRow:
        k, a = c[0], c[4]
        return cls(
            row=k[0], first_name=k[1], last_name=k[2], organisation=c[5], job_title=k[4],
            language=k[5], owner_id=k[6], notes=k[7], custom=json.loads(k[8]),
            phones=[(p[1], p[2], p[3], p[4]) for p in c[1]], emails=[e[1] for e in c[2]],
            tags=[t[1] for t in c[3]],
            address=None if a is None else dict(zip(_ADDRESS_KEYS, a[1:], strict=True)),
            search_name=k[9], search_text=k[10], keys=list(c[6]),
        )

    def dedupe_keys(self) -> list[str]:
        """What identifies this contact for dedupe: its numbers and e-mails."""
        return self.keys

    def absorb(self, other: ContactRow) -> None:
        """Take what a duplicate row adds: numbers, e-mails, tags, empty fields."""
        known = {p[0] for p in self.phones}
        self.phones.extend(p for p in other.phones if p[0] not in known)
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


_ADDRESS_KEYS: Final = ("street", "city", "postal_code", "country")


class RowValidator:
    """Turns raw cells into a Candidate, or RowErrors with the column's header and the reason."""

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
        self._phone_columns = [i for i, _ in self._phones]
        # The single-column targets are picked from the row cut or padded to the header's
        # width plus one empty cell, which an unmapped target reads.
        self._width = len(columns.targets)
        self._blank = [""] * (self._width + 1)
        self._pick = itemgetter(*[self._single.get(t, self._width) for t in _SINGLE])
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

    def check(self, number: int, cells: Sequence[str]) -> Candidate | list[RowError] | None:
        """None for an empty row; the candidate; or every problem the row has.

        The straight path for rows without problems: at the first sign of one, the row goes
        through `complete`, which collects every reason."""
        if _MEANINGFUL.search("".join(cells)) is None:
            return None  # blank, or only stray separators and punctuation
        n = len(cells)
        width = self._width
        padded = [*cells[:width], *self._blank[min(n, width):]]  # see __init__
        (first, last, organisation, job_title, language, full_name, notes, owner, street, city,
         postal_code, country) = map(str.strip, self._pick(padded))
        if (len(first) > 100 or len(last) > 100 or len(organisation) > 200
                or len(job_title) > 200 or len(language) > 16 or len(notes) > NOTES_LIMIT):
            return self._slow(number, cells)
        if not first and not last and full_name:
            given, _, family = full_name.rpartition(" ")
            first, last = given[:100], family[:100]
        phones: list[StoredPhone] = []
        stored = self.normaliser.stored
        for index in self._phone_columns:
            raw = cells[index].strip() if index < n else ""
            if not raw:
                continue
            for part in SPLIT_MULTI.split(raw) if "," in raw or ";" in raw else (raw,):
                parsed = stored(part)
                if isinstance(parsed, str):
                    return self._slow(number, cells)
                if not phones or all(p[0] != parsed[0] for p in phones):
                    phones.append(parsed)
        emails: list[str] = []
        for index in self._emails:
            raw = cells[index].strip() if index < n else ""
            if not raw:
                continue
            for part in SPLIT_MULTI.split(raw) if "," in raw or ";" in raw else (raw,):
                if EMAIL.fullmatch(part) is None:
                    return self._slow(number, cells)
                if (mail := part.lower()) not in emails:
                    emails.append(mail)
        tags: list[str] = []
        for index in self._tags:
            raw = cells[index].strip() if index < n else ""
            if not raw:
                continue
            for tag in SPLIT_TAGS.split(raw) if "," in raw or ";" in raw or "|" in raw else (
                raw,
            ):
                if len(tag) > 64:
                    return self._slow(number, cells)
                if tag and tag not in tags:
                    tags.append(tag)
        owner_id = None
        if owner and (owner_id := self.users.get(owner.casefold())) is None:
            return self._slow(number, cells)
        custom = "{}"
        if self.custom_fields:
            values = {key: cells[i] if i < n else "" for i, key in self._custom}
            try:
                coerced = validate(self.custom_fields, values)
            except CustomFieldError:
                return self._slow(number, cells)
            custom = json.dumps(coerced) if coerced else "{}"
        address: tuple[str, str, str, str] | None = None
        if street or city or postal_code or country:
            country = country.upper()
            if (len(street) > 300 or len(city) > 120 or len(postal_code) > 20
                    or (country and _COUNTRY.fullmatch(country) is None)):
                return self._slow(number, cells)
            address = (street, city, postal_code, country)
        if not (first or last or organisation or phones or emails):
            return self._slow(number, cells)
        numbers = [p[0] for p in phones]
        search_name, search_text = search_texts(first, last, organisation, job_title, numbers,
                                                emails, notes)
        # One number, one e-mail or none, as in most rows: built directly, without the loops.
        if len(phones) == 1:
            e164, kind, region, zones = phones[0]
            phone_rows: tuple[PhoneParams, ...] = ((number, e164, kind, region, zones, True),)
        else:
            phone_rows = tuple([(number, *p, i == 0) for i, p in enumerate(phones)])
        if len(emails) < 2:
            mail_rows: tuple[EmailParams, ...] = ((number, emails[0], True),) if emails else ()
        else:
            mail_rows = tuple([(number, e, i == 0) for i, e in enumerate(emails)])
        return (
            (number, first, last, organisation.casefold() or None, job_title, language,
             owner_id, notes, custom, search_name, search_text,
             name_key(first, last, organisation)),
            phone_rows,
            mail_rows,
            tuple([(number, t) for t in tags]) if tags else (),
            None if address is None else (number, *address),
            organisation,
            (*numbers, *emails),
        )

    def _slow(self, number: int, cells: Sequence[str]) -> Candidate | list[RowError] | None:
        result = self.complete(number, cells)
        return result.candidate() if isinstance(result, ContactRow) else result

    def complete(self, number: int, cells: Sequence[str]) -> ContactRow | list[RowError] | None:
        """`check` the thorough way: None for an empty row; the row; or every problem."""
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
        notes = self._get(cells, "notes")
        if len(notes) > NOTES_LIMIT:
            errors.append(RowError(number, headers[self._single["notes"]],
                                   f"longer than {NOTES_LIMIT} characters", notes[:80]))
        else:
            row.notes = notes
        if not row.first_name and not row.last_name and (full := self._get(cells, "full_name")):
            first, _, last = full.rpartition(" ")
            row.first_name, row.last_name = first[:100], last[:100]
        for index, _kind in self._phones:
            raw = cells[index] if index < len(cells) else ""
            for part in SPLIT_MULTI.split(raw.strip()) if raw.strip() else ():
                parsed = self.normaliser.stored(part)
                if isinstance(parsed, str):
                    errors.append(RowError(number, headers[index], parsed, part))
                elif all(p[0] != parsed[0] for p in row.phones):
                    row.phones.append(parsed)
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
