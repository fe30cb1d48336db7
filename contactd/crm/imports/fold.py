"""A batch of valid rows as the SQLite writer takes it: repeats folded, parameter lists made.

When the contacts table is empty as an import starts, every duplicate is a repeat of an
earlier row of the same file, and the reading side, which sees the rows in order, folds them
(`Folder`) with the same rule the writer uses otherwise: a row is a repeat of the first
earlier row sharing its first known number or e-mail. The batch then leaves the worker as
ready parameter lists, so the writer's process does no per-row Python work beyond decoding.
Rows are numbered within the batch (`i`); the writer adds the batch's first contact id in SQL.
"""

from __future__ import annotations

from typing import Final

from contactd.crm.imports.validate import Candidate, ContactRow
from contactd.crm.phones import StoredPhone

ContactParams = tuple[
    int, str, str, str | None, str, str, int | None, str, str, str, str
]  # i, first, last, organisation key, job title, language, owner, notes, custom, search x2
PhoneParams = tuple[int, str, str, str | None, str, bool]  # i, e164, type, region, zones, primary
EmailParams = tuple[int, str, bool]
TagParams = tuple[int, str]
AddressParams = tuple[int, str, str, str, str]
Params = tuple[
    list[ContactParams], list[PhoneParams], list[EmailParams], list[TagParams],
    list[AddressParams],
]
# The new rows' parameters; distinct organisation and tag names they use; how many rows were
# folded into a new row of this batch; repeats of rows of earlier batches (ordinal, row).
Folded = tuple[int, int, Params, list[str], list[str], int, list[tuple[int, Candidate]]]
FIRST_ORDINAL: Final = 1  # index of the batch's first ordinal in Folded


def params(rows: list[Candidate]) -> Params:
    """The insert parameters of new rows, numbered 0… in order."""
    phones: list[PhoneParams] = []
    emails: list[EmailParams] = []
    tags: list[TagParams] = []
    addresses: list[AddressParams] = []
    contacts: list[ContactParams] = []
    for i, c in enumerate(rows):
        contacts.append((i, c[1], c[2], c[3].casefold() if c[3] else None, c[4], c[5] or "en",
                         c[7], c[6], c[8], c[13], c[14]))
        numbers: tuple[StoredPhone, ...] = c[9]
        if numbers:
            phones.extend([(i, p[0], p[1], p[2], p[3], n == 0) for n, p in enumerate(numbers)])
        if c[10]:
            emails.extend([(i, e, n == 0) for n, e in enumerate(c[10])])
        if c[11]:
            tags.extend([(i, t) for t in c[11]])
        if (a := c[12]) is not None:
            addresses.append((i, *a))
    return contacts, phones, emails, tags, addresses


def names(rows: list[Candidate]) -> tuple[list[str], list[str]]:
    """Distinct organisation and tag names of the rows, in order of appearance."""
    orgs = list(dict.fromkeys(c[3] for c in rows if c[3]))
    tags = list(dict.fromkeys(t for c in rows for t in c[11]))
    return orgs, tags


class Folder:
    """Folds repeats across a whole file, batch by batch (state lives between batches)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}  # number or e-mail -> ordinal of the new row it has
        self.ordinal = 0  # new rows so far

    def fold(self, rows: list[Candidate]) -> Folded:
        first = self.ordinal
        seen = self.seen
        new: list[Candidate] = []
        merged: dict[int, ContactRow] = {}
        folded = 0
        repeats: list[tuple[int, Candidate]] = []
        for c in rows:
            keys = c[15]
            target = None
            for key in keys:
                target = seen.get(key)
                if target is not None:
                    break
            if target is None:
                ordinal = first + len(new)
                new.append(c)
                for key in keys:
                    seen[key] = ordinal
                continue
            if target >= first:  # a row of this batch: take what the repeat adds
                folded += 1
                row = merged.get(target - first)
                if row is None:
                    row = merged[target - first] = ContactRow.from_candidate(new[target - first])
                row.absorb(ContactRow.from_candidate(c))
            else:
                repeats.append((target, c))
            for key in keys:
                seen.setdefault(key, target)
        for index, row in merged.items():
            new[index] = row.candidate()
            for key in row.keys:  # what the writer would note after writing it
                seen[key] = first + index
        self.ordinal = first + len(new)
        orgs, tags = names(new)
        return len(new), first, params(new), orgs, tags, folded, repeats
