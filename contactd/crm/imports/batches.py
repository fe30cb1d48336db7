"""Reading and validating an import file batch by batch, off the event loop.

Small files are read in a thread; big ones in a worker process, where validation (pure
Python, GIL-bound) gets a core of its own while the importer's process writes.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from contactd.crm.errors import ImportFileError
from contactd.crm.fields import FieldDef
from contactd.crm.imports.mapping import detect
from contactd.crm.imports.reader import FileStats, open_rows
from contactd.crm.imports.validate import ContactRow, RowError, RowValidator
from contactd.crm.phones import PhoneNormaliser


@dataclass
class Context:
    fields: list[FieldDef]
    users: dict[str, int]
    tags: dict[str, int]
    organisations: dict[str, int]


class Batches:
    """Pulls validated batches out of the file; every call runs in a worker thread."""

    def __init__(
        self, path: Path, ctx: Context, region: str | None, mapping: Mapping[str, str] | None
    ) -> None:
        self.stats, self._rows = open_rows(path)
        self.ctx, self.region, self.mapping = ctx, region, mapping
        self.validator: RowValidator | None = None
        self.number = 1  # spreadsheet row number: the header is row 1
        self._cells = self._guarded()  # one generator for the whole file, pulled per batch

    def start(self) -> dict[str, str]:
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

    def next(self, size: int) -> tuple[int, list[ContactRow], list[RowError], int] | None:
        assert self.validator is not None
        rows: list[ContactRow] = []
        errors: list[RowError] = []
        read = empty = 0
        check = self.validator.check
        for cells in self._cells:
            self.number += 1
            read += 1
            result = check(self.number, cells)
            if result is None:
                empty += 1
            elif isinstance(result, ContactRow):
                rows.append(result)
            else:
                errors.extend(result)
            if read >= size:
                break
        if read == 0:
            return None
        return read, rows, errors, empty


Batch = tuple[int, list[ContactRow], list[RowError], int]

# The validating side of an import running in a worker process (one per import): its state
# lives here between calls, the executor has a single worker.
_WORKER: Batches | None = None


def worker_open(
    path: Path, ctx: Context, region: str | None, mapping: Mapping[str, str] | None
) -> dict[str, str]:
    global _WORKER
    _WORKER = Batches(path, ctx, region, mapping)
    return _WORKER.start()


def worker_next(size: int) -> tuple[Batch | None, FileStats]:
    assert _WORKER is not None
    return _WORKER.next(size), _WORKER.stats


class Reader:
    """Reads and validates batches off the event loop: in a thread for small files, in a
    worker process for big ones, where validation (pure Python, GIL-bound) gets a core of its
    own while this process writes."""

    def __init__(self, path: Path, ctx: Context, region: str | None,
                 mapping: Mapping[str, str] | None, *, process: bool) -> None:
        self.args = (path, Context(ctx.fields, ctx.users, {}, {}), region, mapping)
        self.stats = FileStats()
        self._executor: ProcessPoolExecutor | None = None
        self._batches: Batches | None = None
        if process:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))

    async def start(self) -> dict[str, str]:
        if self._executor is None:
            self._batches = await asyncio.to_thread(Batches, *self.args)
            self.stats = self._batches.stats
            return await asyncio.to_thread(self._batches.start)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, worker_open, *self.args)

    async def next(self, size: int) -> Batch | None:
        if self._batches is not None:
            return await asyncio.to_thread(self._batches.next, size)
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        batch, self.stats = await loop.run_in_executor(self._executor, worker_next, size)
        return batch

    async def close(self) -> None:
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
