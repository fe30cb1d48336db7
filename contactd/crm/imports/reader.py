"""Read rows out of CSV or XLSX files as lists of strings, whatever their encoding.

CSV files come from every spreadsheet there is: UTF-8 with or without BOM, Windows-1252,
Latin-1, sometimes all of them concatenated. Each line is decoded on its own (UTF-8 first,
then cp1252, then Latin-1, which never fails), and the delimiter is sniffed from the start.
Blocking I/O: callers run this in a thread.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from contactd.crm.errors import ImportFileError

SNIFF_BYTES: Final = 64 * 1024
BLOCK_BYTES: Final = 1 << 20
DELIMITERS: Final = ",;\t|"
XLSX_MAGIC: Final = b"PK\x03\x04"
# A workbook is a zip of XML: its declared dimension, its row numbers and its compression are
# all the sender's word. These bounds keep a small hostile file from costing minutes or GBs.
XLSX_MAX_UNCOMPRESSED: Final = 512 * 1024 * 1024
XLSX_MAX_COLUMNS: Final = 1000
XLSX_MAX_ROWS: Final = 1_048_576  # Excel's own limit
XLSX_MAX_EMPTY_RUN: Final = 10_000  # rows in a row with nothing in them: the data has ended

log = logging.getLogger(__name__)


@dataclass
class FileStats:
    kind: str = "csv"
    delimiter: str = ","
    encodings: Counter[str] = field(default_factory=Counter)
    # Why reading stopped before the file's end, when it did (a run of empty rows in an XLSX).
    stopped_early: str = ""


def _decode(line: bytes, stats: FileStats) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8" or not line.isascii():
            stats.encodings[encoding] += 1
        return text
    stats.encodings["latin-1"] += 1
    return line.decode("latin-1")


def _lines(stream: BinaryIO, stats: FileStats) -> Iterator[str]:
    """Decoded lines (split at "\n" only, as binary line iteration does), each line decoded on
    its own as `_decode` does. Reads in blocks: a block that is valid UTF-8 as a whole is
    valid line by line too (a newline byte never sits inside a character), so it is decoded
    in one call; any other block goes line by line."""
    rest = b""
    first = True
    while True:
        chunk = stream.read(BLOCK_BYTES)
        block = rest + chunk
        cut = block.rfind(b"\n") + 1 if chunk else len(block)
        if cut == 0 and chunk:
            rest = block
            continue
        block, rest = block[:cut], block[cut:]
        if first and block:
            first = False
            end = block.find(b"\n") + 1 or len(block)
            line, block = block[:end], block[end:]
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
                stats.encodings["utf-8-sig"] += 1
            yield _decode(line, stats)
        if block:
            yield from _decode_block(block, stats)
        if not chunk:
            return


def _decode_block(block: bytes, stats: FileStats) -> Iterator[str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        for line in io.BytesIO(block):
            yield _decode(line, stats)
        return
    if not block.isascii():
        stats.encodings["utf-8"] += sum(1 for line in block.split(b"\n") if not line.isascii())
    yield from io.StringIO(text, newline="\n")


def _sniff(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        # The Sniffer gives up on ragged samples: count delimiters on the header line.
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else (
            value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers typed into number cells
    return str(value).strip()


def _check_xlsx_size(path: Path) -> None:
    """Refuse a workbook whose parts would inflate past the bound (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from None
    if inflated > XLSX_MAX_UNCOMPRESSED:
        raise ImportFileError(
            f"{path}: the workbook unpacks to {inflated // (1024 * 1024)} MiB, more than the "
            f"{XLSX_MAX_UNCOMPRESSED // (1024 * 1024)} MiB an import reads"
        )


def _xlsx_rows(path: Path, stats: FileStats) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    _check_xlsx_size(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a corrupt file
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from None
    try:
        sheet = workbook.worksheets[0]
        # The declared dimension (A1:XFD1048576 in a hostile file) would pad every row to it.
        sheet.reset_dimensions()
        empty_run = 0
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > XLSX_MAX_ROWS:
                raise ImportFileError(f"{path}: more than {XLSX_MAX_ROWS} rows")
            if len(row) > XLSX_MAX_COLUMNS and any(v is not None for v in row[XLSX_MAX_COLUMNS:]):
                raise ImportFileError(
                    f"{path}: row {number} has data past column {XLSX_MAX_COLUMNS}"
                )
            cells = [_cell(v) for v in row[:XLSX_MAX_COLUMNS]]
            if any(cells):
                empty_run = 0
            else:
                empty_run += 1
                if empty_run >= XLSX_MAX_EMPTY_RUN:
                    stats.stopped_early = (
                        f"stopped at row {number}: {XLSX_MAX_EMPTY_RUN} empty rows in a row"
                    )
                    log.warning("xlsx import stopped early",
                                extra={"path": str(path), "reason": stats.stopped_early})
                    return
            yield cells
    finally:
        workbook.close()


def _csv_rows(path: Path, stats: FileStats) -> Iterator[list[str]]:
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
        sample = head.decode("utf-8", errors="replace").lstrip("\ufeff")
        if "\x00" in sample:
            raise ImportFileError(f"{path}: binary data, not a CSV file")
        stats.delimiter = _sniff(sample)
        stream.seek(0)
        reader = csv.reader(_lines(stream, stats), delimiter=stats.delimiter)
        yield from reader


def open_rows(path: Path) -> tuple[FileStats, Iterator[list[str]]]:
    """The file's kind and a row iterator (header first); ImportFileError when unreadable."""
    try:
        with path.open("rb") as probe:
            magic = probe.read(4)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    stats = FileStats()
    if magic == XLSX_MAGIC or path.suffix.lower() in (".xlsx", ".xlsm"):
        stats.kind = "xlsx"
        return stats, _xlsx_rows(path, stats)
    return stats, _csv_rows(path, stats)


def count_lines(path: Path, stats: FileStats) -> int | None:
    """Lines in a CSV file (None for XLSX): a bound on its rows, for sizing batches. Quoted
    line breaks make it a little high, which only makes the last batches a little early."""
    if stats.kind != "csv":
        return None
    lines = 0
    last = b"\n"
    with path.open("rb") as stream:
        while block := stream.read(BLOCK_BYTES):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def decode_text(data: bytes) -> str:
    """Decode a whole small file line by line (tests and previews)."""
    stats = FileStats()
    return "".join(_lines(io.BytesIO(data), stats))
