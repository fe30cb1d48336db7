"""Read rows out of CSV or XLSX files as lists of strings, whatever their encoding.

CSV files come from every spreadsheet there is: UTF-8 with or without BOM, Windows-1252,
Latin-1, sometimes all of them concatenated. Each line is decoded on its own (UTF-8 first,
then cp1252, then Latin-1, which never fails), and the delimiter is sniffed from the start.
Blocking I/O: callers run this in a thread.
"""

from __future__ import annotations

import csv
import io
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
# The csv module refuses fields over 128 KiB by aborting the whole read; a cell that long
# (a pasted e-mail thread in the notes) must only refuse its row, which validate does. This
# bound only guards memory against a file whose quoting never closes.
CSV_FIELD_BYTES: Final = 64 << 20
# XLSX bounds: a tiny file can declare a million rows by 16,384 columns (its dimension) or
# expand to gigabytes (a zip bomb). The declared dimension is ignored, columns past this are
# not read, reading stops after this many empty rows in a row, and a workbook whose parts
# uncompress to more than this is refused before openpyxl opens it.
XLSX_MAX_COLUMNS: Final = 256
XLSX_EMPTY_RUN: Final = 1000
XLSX_MAX_UNCOMPRESSED: Final = 1 << 30
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")

csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_BYTES))


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


def _xlsx_size(path: Path) -> int:
    """What the workbook's parts uncompress to, as its zip directory declares."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from None


def _xlsx_rows(path: Path, stats: FileStats) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    size = _xlsx_size(path)
    if size > XLSX_MAX_UNCOMPRESSED:
        raise ImportFileError(
            f"{path}: the workbook uncompresses to {size:,} bytes, over the "
            f"{XLSX_MAX_UNCOMPRESSED:,} an import reads"
        )
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a corrupt file
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from None
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()
        empty_run = 0
        # Without max_col: given one, openpyxl pads every row out to it.
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(v is not None for v in row[XLSX_MAX_COLUMNS:]):
                # Refused, not cut: data there would otherwise vanish without a word.
                raise ImportFileError(
                    f"{path}: row {number} has data past column {XLSX_MAX_COLUMNS}"
                )
            cells = [_cell(v) for v in row[:XLSX_MAX_COLUMNS]]
            if any(cells):
                empty_run = 0
            else:
                empty_run += 1
                if empty_run >= XLSX_EMPTY_RUN:
                    stats.stopped_early = (
                        f"stopped at row {number}: {XLSX_EMPTY_RUN} empty rows in a row"
                    )
                    return
            yield cells
    finally:
        workbook.close()


class _CROnly:
    """A binary stream of a file whose lines end in CR alone (classic Mac OS, some exports):
    read with LF line ends, as `_lines` splits."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, size: int) -> bytes:
        return self.stream.read(size).replace(b"\r", b"\n")


def _utf16_rows(path: Path, head: bytes, stats: FileStats) -> Iterator[list[str]]:
    """Excel's "Unicode Text": UTF-16 with a BOM, tab-separated as a rule (sniffed anyway)."""
    stats.delimiter = _sniff(head[: len(head) & ~1].decode("utf-16", errors="replace")
                             .lstrip("\ufeff"))
    with path.open(encoding="utf-16", newline="") as text:
        try:
            for row in csv.reader(text, delimiter=stats.delimiter):
                stats.encodings["utf-16"] += 1
                yield row
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{path}: not valid UTF-16 text after its byte order mark: {exc}"
            ) from None


def _csv_rows(path: Path, stats: FileStats) -> Iterator[list[str]]:
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
        if head.startswith(UTF16_BOMS):
            stream.close()
            yield from _utf16_rows(path, head, stats)
            return
        sample = head.decode("utf-8", errors="replace").lstrip("\ufeff")
        if "\x00" in sample:
            raise ImportFileError(f"{path}: binary data, not a CSV file")
        cr_only = "\r" in sample and "\n" not in sample
        if cr_only:
            sample = sample.replace("\r", "\n")
        stats.delimiter = _sniff(sample)
        stream.seek(0)
        source: BinaryIO = _CROnly(stream) if cr_only else stream  # type: ignore[assignment]
        reader = csv.reader(_lines(source, stats), delimiter=stats.delimiter)
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
    returns = 0
    last = b"\n"
    with path.open("rb") as stream:
        while block := stream.read(BLOCK_BYTES):
            lines += block.count(b"\n")
            returns += block.count(b"\r")
            last = block[-1:]
    if not lines and returns:  # CR-only line ends
        return returns + (last != b"\r")
    return lines + (last != b"\n")


def decode_text(data: bytes) -> str:
    """Decode a whole small file line by line (tests and previews)."""
    stats = FileStats()
    return "".join(_lines(io.BytesIO(data), stats))
