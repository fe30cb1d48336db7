"""Reading and validating an import file batch by batch, off the event loop.

Small files are read in a thread; big ones in a worker process, where validation (pure
Python, GIL-bound) gets a core of its own while the importer's process writes. A batch leaves
the worker as one marshal blob of plain tuples: a tenth of what pickling row objects costs.
"""

from __future__ import annotations

import asyncio
import csv
import marshal
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Final

from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.crm.custom_fields import FieldDef
from contactd.crm.errors import ImportFileError
from contactd.crm.imports.fold import Folded, Folder
from contactd.crm.imports.mapping import detect
from contactd.crm.imports.reader import FileStats, count_lines, open_rows
from contactd.crm.imports.validate import Candidate, RowError, RowValidator

# Automatic batch sizes: the first batch is small, so the writer starts while the rest is
# being validated; near the end of the file each batch takes half of what is left (down to
# LAST_ROWS), so little is left to write once validation is over.
LARGEST_ROWS: Final = 10_000  # rows per transaction; fewer, larger FTS segments and commits
FIRST_ROWS: Final = 2_000
LAST_ROWS: Final = 1_000


def batch_size(done: int, expected: int | None) -> int:
    """Rows for the next automatically sized batch, `done` rows read of `expected` (None:
    unknown)."""
    if done == 0:
        return FIRST_ROWS
    if expected is None:
        return LARGEST_ROWS
    return max(LAST_ROWS, min(LARGEST_ROWS, (expected - done) // 2))


@dataclass
class Context:
    fields: list[FieldDef]
    users: dict[str, int]
    tags: dict[str, int]
    organisations: dict[str, int]
    fold: bool = False  # fold repeats here (see fold): the contacts table was empty


class Batches:
    """Pulls validated batches out of the file; every call runs in a worker thread."""

    def __init__(
        self, path: Path, ctx: Context, region: str | None, mapping: Mapping[str, str] | None
    ) -> None:
        self.path = path
        self.stats, self._rows = open_rows(path)
        self.ctx, self.region, self.mapping = ctx, region, mapping
        self.validator: RowValidator | None = None
        self.number = 1  # spreadsheet row number: the header is row 1
        self._cells = self._guarded()  # one generator for the whole file, pulled per batch
        self.folder = Folder() if ctx.fold else None
        self.expected: int | None = None  # rows in the file, about (see count_lines)

    def start(self) -> dict[str, str]:
        lines = count_lines(self.path, self.stats)
        self.expected = None if lines is None else lines - 1
        header = next(self._cells, None)
        if header is None:
            raise ImportFileError("the file is empty")
        columns = detect(header, explicit=self.mapping, custom_keys=[f.key for f in
                                                                    self.ctx.fields])
        self.validator = RowValidator(
            columns, normaliser=PhoneNormaliser(self.region), custom_fields=self.ctx.fields,
            users=self.ctx.users,
        )
        return columns.mapped

    def _guarded(self) -> Iterator[list[str]]:
        try:
            yield from self._rows
        except csv.Error as exc:
            where = f"row {self.number + 1}"
            raise ImportFileError(f"{where}: the file cannot be parsed: {exc}") from None

    def next(self, size: int | None) -> Batch | None:
        """The next batch of `size` rows (None: sized by batch_size)."""
        assert self.validator is not None
        if size is None:
            size = batch_size(self.number - 1, self.expected)
        rows: list[Candidate] = []
        errors: list[RowError] = []
        read = empty = 0
        check = self.validator.check
        number = self.number
        for cells in self._cells:
            number += 1
            self.number = number
            read += 1
            result = check(number, cells)
            if result is None:
                empty += 1
            elif isinstance(result, list):
                errors.extend(result)
            else:
                rows.append(result)
            if read >= size:
                break
        if read == 0:
            return None
        if self.folder is not None:
            return read, [], errors, empty, self.folder.fold(rows)
        return read, rows, errors, empty, None


# Rows read, valid rows (when not folded), errors, empty rows, the folded batch (when folded).
Batch = tuple[int, list[Candidate], list[RowError], int, Folded | None]

# Fork where there is fork: the worker starts with the phone metadata already loaded (a spawned
# one spends ~1.3 s importing phonenumbers before its first row). It only reads the file and
# validates; it never touches the parent's database connections or event loop, and
# ProcessPoolExecutor forks its worker before starting its own management thread.
_START: Final = "fork" if "fork" in get_all_start_methods() else "spawn"

# The validating side of an import running in a worker process (one per import): its state
# lives here between calls, the executor has a single worker.
_WORKER: Batches | None = None


def worker_open(
    path: Path, ctx: Context, region: str | None, mapping: Mapping[str, str] | None
) -> dict[str, str]:
    global _WORKER
    _WORKER = Batches(path, ctx, region, mapping)
    return _WORKER.start()


def worker_next(size: int | None) -> tuple[bytes | None, FileStats]:
    """The next batch as marshal data (plain tuples; errors as tuples too)."""
    assert _WORKER is not None
    batch = _WORKER.next(size)
    if batch is None:
        return None, _WORKER.stats
    read, rows, errors, empty, folded = batch
    plain = [(e.row, e.column, e.reason, e.value) for e in errors]
    return marshal.dumps((read, rows, plain, empty, folded)), _WORKER.stats


def _unpack(blob: bytes) -> Batch:
    read, rows, plain, empty, folded = marshal.loads(blob)
    return read, rows, [RowError(*e) for e in plain], empty, folded


class Reader:
    """Reads and validates batches off the event loop: in a thread for small files, in a
    worker process for big ones, where validation (pure Python, GIL-bound) gets a core of its
    own while this process writes."""

    def __init__(self, path: Path, ctx: Context, region: str | None,
                 mapping: Mapping[str, str] | None, *, process: bool) -> None:
        self.args = (path, Context(ctx.fields, ctx.users, {}, {}, ctx.fold), region, mapping)
        self.stats = FileStats()
        self._executor: ProcessPoolExecutor | None = None
        self._batches: Batches | None = None
        # Batches that may be asked for at once: calls queue up in the single worker process;
        # a thread would race another on the file, so one at a time there.
        self.depth = 2 if process else 1
        if process:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=get_context(_START))

    async def start(self) -> dict[str, str]:
        if self._executor is None:
            self._batches = await asyncio.to_thread(Batches, *self.args)
            self.stats = self._batches.stats
            return await asyncio.to_thread(self._batches.start)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, worker_open, *self.args)

    async def next(self, size: int | None) -> Batch | None:
        if self._batches is not None:
            return await asyncio.to_thread(self._batches.next, size)
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        blob, self.stats = await loop.run_in_executor(self._executor, worker_next, size)
        return None if blob is None else await asyncio.to_thread(_unpack, blob)

    async def close(self) -> None:
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
