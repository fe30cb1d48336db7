"""A batch of valid rows as the SQLite writer takes it: repeats folded, parameter lists made.

When the contacts table is empty as an import starts, every duplicate is a repeat of an
earlier row of the same file, and the reading side, which sees the rows in order, folds them
(`Folder`) with the same rule the writer applies otherwise: a row repeats the row that first
had its first known number or e-mail. The batch then leaves the worker as the parameter
lists of its new rows (led by their row numbers, see validate), so the writer's process does
no per-row Python work beyond decoding them.
"""

from __future__ import annotations

from contactd.crm.imports.validate import (
    AddressParams,
    Candidate,
    ContactParams,
    ContactRow,
    EmailParams,
    PhoneParams,
    TagParams,
)

Params = tuple[
    list[ContactParams], list[PhoneParams], list[EmailParams], list[TagParams],
    list[AddressParams],
]
# The new rows' parameters; distinct organisation and tag names they use; how many rows were
# folded into a new row of this batch; repeats of rows of earlier batches (that row, this row).
Folded = tuple[Params, list[str], list[str], int, list[tuple[int, Candidate]]]


def params(rows: list[Candidate]) -> Params:
    """The insert parameters of new rows."""
    return (
        [c[0] for c in rows],
        [p for c in rows for p in c[1]],
        [e for c in rows for e in c[2]],
        [t for c in rows for t in c[3]],
        [a for c in rows if (a := c[4]) is not None],
    )


def first_owner(keys: tuple[str, ...], seen: dict[str, int]) -> int | None:
    """The row (or contact) that first had one of these numbers or e-mails, if any: a row
    repeats the one that first had its first known key."""
    for key in keys:
        target = seen.get(key)
        if target is not None:
            return target
    return None


def names(rows: list[Candidate]) -> tuple[list[str], list[str]]:
    """Distinct organisation and tag names of the rows, in order of appearance."""
    orgs = list(dict.fromkeys(c[5] for c in rows if c[5]))
    tags = list(dict.fromkeys(t[1] for c in rows for t in c[3]))
    return orgs, tags


class Folder:
    """Folds repeats across a whole file, batch by batch (state lives between batches)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}  # number or e-mail -> row number of the new row

    def fold(self, rows: list[Candidate]) -> Folded:
        seen = self.seen
        new: dict[int, Candidate] = {}  # by row number, in file order
        merged: dict[int, ContactRow] = {}
        folded = 0
        repeats: list[tuple[int, Candidate]] = []
        for c in rows:
            keys = c[6]
            target = first_owner(keys, seen)
            if target is None:
                number = c[0][0]
                new[number] = c
                for key in keys:
                    seen[key] = number
                continue
            if target in new:  # a row of this batch: take what the repeat adds
                folded += 1
                row = merged.get(target)
                if row is None:
                    row = merged[target] = ContactRow.from_candidate(new[target])
                row.absorb(ContactRow.from_candidate(c))
            else:
                repeats.append((target, c))
            for key in keys:
                seen.setdefault(key, target)
        for number, row in merged.items():
            new[number] = row.candidate()
            for key in row.keys:  # what the writer would note after writing it
                seen[key] = number
        batch = list(new.values())
        orgs, tags = names(batch)
        return params(batch), orgs, tags, folded, repeats
