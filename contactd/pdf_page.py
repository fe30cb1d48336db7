"""A PDF started the same way for documents and reports (fpdf2): title, page breaks, and a
Unicode font when Debian's DejaVu is installed, else Helvetica with text cut to Latin-1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

FONT_CANDIDATES: Final = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


@dataclass
class PdfPage:
    pdf: Any  # fpdf.FPDF
    family: str  # the font family to set
    safe: Callable[[Any], str]  # text as the font can print it


def start_pdf(title: str, *, margin_mm: float,
              orientation: Literal["portrait", "landscape"] = "portrait") -> PdfPage:
    from fpdf import FPDF

    pdf = FPDF(orientation=orientation, format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=True, margin=margin_mm)
    pdf.add_page()
    font = next((p for p in FONT_CANDIDATES if p.exists()), None)
    if font is None:
        return PdfPage(pdf, "Helvetica",
                       lambda value: str(value).encode("latin-1", "replace").decode("latin-1"))
    pdf.add_font("Body", "", str(font))
    return PdfPage(pdf, "Body", str)
