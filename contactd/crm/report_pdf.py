"""A report as a PDF (fpdf2): its title, period and filter, the chart (matplotlib's PNG: the
same figure the page shows as SVG) and the table. Pure and blocking: run it in a thread."""

from __future__ import annotations

import io

from contactd.crm.report_charts import png
from contactd.crm.reports import ReportTable
from contactd.pdf_page import start_pdf


def render_report_pdf(result: ReportTable, title: str, period: str) -> bytes:
    page = start_pdf(title, margin_mm=12, orientation="landscape")
    pdf, family, safe = page.pdf, page.family, page.safe
    pdf.set_font(family, size=16)
    pdf.multi_cell(0, 9, safe(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=10)
    pdf.multi_cell(0, 6, safe(period), new_x="LMARGIN", new_y="NEXT")
    if result.note:
        pdf.multi_cell(0, 6, safe(result.note), new_x="LMARGIN", new_y="NEXT")
    pdf.image(io.BytesIO(png(result.chart, title)), w=pdf.epw)
    pdf.ln(3)
    pdf.set_font(family, size=8)
    from fpdf.fonts import FontFace

    headings = FontFace(emphasis="", fill_color=(230, 236, 245))
    with pdf.table(first_row_as_headings=True, text_align="LEFT", headings_style=headings) as table:
        for row in [result.columns, *result.rows]:
            cells = table.row()
            for value in row:
                cells.cell(safe("" if value is None else value))
    return bytes(pdf.output())
