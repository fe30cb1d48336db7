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
from contactd.crm.matching import names_compatible

Params = tuple[
    list[ContactParams], list[PhoneParams], list[EmailParams], list[TagParams],
    list[AddressParams],
]
# The new rows' parameters; distinct organisation and tag names they use; how many rows were
# folded into a new row of this batch; repeats of rows of earlier batches (that row, this row);
# possible duplicates (row numbers of an earlier new row and of a new row sharing its number).
Folded = tuple[
    Params, list[str], list[str], int, list[tuple[int, Candidate]], list[tuple[int, int]]
]


def params(rows: list[Candidate]) -> Params:
    """The insert parameters of new rows."""
    return (
        [c[0] for c in rows],
        [p for c in rows for p in c[1]],
        [e for c in rows for e in c[2]],
        [t for c in rows for t in c[3]],
        [a for c in rows if (a := c[4]) is not None],
    )


class Owners:
    """Who first had each number or e-mail, and the names of those rows or contacts, so a
    row is matched by the rule of contactd.crm.matching: an e-mail matches whoever had it;
    a number matches one of its owners whose name is compatible. A number shared by people
    whose names contradict has several owners (the first in `first`, the others in `more`)."""

    def __init__(self) -> None:
        self.first: dict[str, int] = {}  # number or e-mail -> first row/contact that had it
        self.more: dict[str, list[int]] = {}  # number -> later owners with other names
        self.names: dict[int, tuple[str, str]] = {}  # row/contact -> (first name, last name)

    def find(self, keys: tuple[str, ...], first_name: str, last_name: str
             ) -> tuple[int | None, list[int]]:
        """The row (or contact) this row is the same person as, if any, else the owners of
        its numbers whose names contradict (possible duplicates)."""
        first = self.first
        for key in keys:
            if key[0] != "+":
                target = first.get(key)
                if target is not None:
                    return target, []
        conflicts: list[int] = []
        for key in keys:
            target = first.get(key)
            if target is None or key[0] != "+":
                continue
            for owner in (target, *self.more.get(key, ())):
                f, last = self.names.get(owner, ("", ""))
                if names_compatible(f, last, first_name, last_name):
                    return owner, []
                if owner not in conflicts:
                    conflicts.append(owner)
        return None, conflicts

    def add(self, keys: tuple[str, ...] | list[str], owner: int, first_name: str,
            last_name: str) -> None:
        """Note a new row or contact as an owner of its keys."""
        self.names[owner] = (first_name, last_name)
        first = self.first
        for key in keys:
            had = first.setdefault(key, owner)
            if had != owner:
                others = self.more.setdefault(key, [])
                if owner not in others:
                    others.append(owner)

    def rename(self, keys: tuple[str, ...] | list[str], old: int, new: int) -> None:
        """A pending row (`old`) was written as contact `new`."""
        self.names[new] = self.names.pop(old, ("", ""))
        for key in keys:
            if self.first.get(key) == old:
                self.first[key] = new
            others = self.more.get(key)
            if others and old in others:
                others[others.index(old)] = new

    def absorbed(self, keys: tuple[str, ...] | list[str], owner: int) -> None:
        """Keys a repeat added to its owner."""
        for key in keys:
            self.first.setdefault(key, owner)


def names(rows: list[Candidate]) -> tuple[list[str], list[str]]:
    """Distinct organisation and tag names of the rows, in order of appearance."""
    orgs = list(dict.fromkeys(c[5] for c in rows if c[5]))
    tags = list(dict.fromkeys(t[1] for c in rows for t in c[3]))
    return orgs, tags


class Folder:
    """Folds repeats across a whole file, batch by batch (state lives between batches)."""

    def __init__(self) -> None:
        self.owners = Owners()  # row numbers of the new rows

    def fold(self, rows: list[Candidate]) -> Folded:
        owners = self.owners
        new: dict[int, Candidate] = {}  # by row number, in file order
        merged: dict[int, ContactRow] = {}
        folded = 0
        repeats: list[tuple[int, Candidate]] = []
        possible: list[tuple[int, int]] = []
        for c in rows:
            keys, k = c[6], c[0]
            target, conflicts = owners.find(keys, k[1], k[2])
            if target is None:
                number = k[0]
                new[number] = c
                owners.add(keys, number, k[1], k[2])
                possible.extend((other, number) for other in conflicts)
                continue
            if target in new:  # a row of this batch: take what the repeat adds
                folded += 1
                row = merged.get(target)
                if row is None:
                    row = merged[target] = ContactRow.from_candidate(new[target])
                row.absorb(ContactRow.from_candidate(c))
            else:
                repeats.append((target, c))
            owners.absorbed(keys, target)
        for number, row in merged.items():
            new[number] = row.candidate()
            owners.absorbed(row.keys, number)  # what the writer would note after writing it
        batch = list(new.values())
        orgs, tags = names(batch)
        return params(batch), orgs, tags, folded, repeats, possible
