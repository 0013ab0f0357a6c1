"""The executive summary as a one-page A4 PDF (fpdf2), for leadership to read and forward.

The page shows the same lines as the text forms (worker.roi.executive_render), in the same
words and figures. It uses fpdf2's core fonts (Helvetica), which need no font file and no
download, and so only Latin-1 text: everything the summary writes is ASCII, and a character
outside Latin-1 (none can reach it today: pattern ids are ASCII by the event contract) is shown
as `?` rather than failing. Every block has a fixed number of lines (at most
worker.roi.executive.LISTED patterns per list, long pattern ids shortened to their cell), so the
summary always fits one page; tests/unit/roi/test_executive.py renders the longest one.
"""

from __future__ import annotations

from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .executive import ExecutiveSummary
from .executive_render import (
    TITLE,
    Line,
    Ranking,
    footnote,
    generated_line,
    headline,
    period_line,
    productivity_lines,
    rankings,
    savings_lines,
)

FONT: Final = "Helvetica"  # a PDF core font: no file to ship or download
MARGIN: Final = 18.0  # mm
WIDTH: Final = 210.0 - 2 * MARGIN  # mm of A4 between the margins
ROW: Final = 6.5  # mm, a line of figures
# The pattern table's columns: name, width in mm (adding up to WIDTH) and alignment.
COLUMNS: Final = (
    ("#", 8.0, "L"),
    ("Pattern", 64.0, "L"),
    ("Rating", 24.0, "L"),
    ("Success", 22.0, "R"),
    ("ROI", 22.0, "R"),
    ("Net saved", 34.0, "R"),
)
LABEL_WIDTH: Final = 100.0  # mm, the label column of the figures' lines
INK: Final = (33, 37, 41)
MUTED: Final = (90, 96, 104)  # still above 4.5:1 on white
ACCENT: Final = (20, 90, 50)


def render_pdf(summary: ExecutiveSummary) -> bytes:
    """The summary as the bytes of a one-page PDF."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN)
    pdf.set_title(TITLE)
    pdf.set_author("roi-worker")
    pdf.set_creator("roi-worker report --executive")
    pdf.set_creation_date(summary.generated_at)
    pdf.add_page()
    _heading(pdf, summary)
    _block(pdf, "Cost savings", savings_lines(summary), hero=headline(summary))
    _block(pdf, "Productivity", productivity_lines(summary))
    for ranking in rankings(summary):
        _ranking(pdf, ranking)
    pdf.ln(4)
    _style(pdf, "I", 8.5, MUTED)
    pdf.multi_cell(WIDTH, 4.5, _latin1(footnote(summary)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _heading(pdf: FPDF, summary: ExecutiveSummary) -> None:
    _style(pdf, "B", 18, INK)
    pdf.cell(WIDTH, 10, _latin1(TITLE), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _style(pdf, "", 10, MUTED)
    pdf.cell(
        WIDTH, 5.5, _latin1(f"Period: {period_line(summary)}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.cell(WIDTH, 5.5, _latin1(generated_line(summary)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_draw_color(*MUTED)
    pdf.line(MARGIN, pdf.get_y(), MARGIN + WIDTH, pdf.get_y())
    pdf.ln(3)


def _title(pdf: FPDF, title: str) -> None:
    pdf.ln(3)
    _style(pdf, "B", 13, ACCENT)
    pdf.cell(WIDTH, 8, _latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _block(pdf: FPDF, title: str, lines: list[Line], *, hero: str | None = None) -> None:
    _title(pdf, title)
    if hero is not None:
        _style(pdf, "B", 16, INK)
        pdf.cell(WIDTH, 9, _latin1(hero), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for line in lines:
        _style(pdf, "", 10.5, MUTED)
        pdf.cell(LABEL_WIDTH, ROW, _latin1(line.label))
        _style(pdf, "B", 10.5, INK)
        pdf.cell(WIDTH - LABEL_WIDTH, ROW, _latin1(line.value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _ranking(pdf: FPDF, ranking: Ranking) -> None:
    _title(pdf, ranking.title)
    if not ranking.rows:
        _style(pdf, "", 10, MUTED)
        pdf.multi_cell(WIDTH, 5, _latin1(ranking.empty), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        return
    _style(pdf, "B", 9, MUTED)
    for name, width, align in COLUMNS:
        pdf.cell(width, ROW, name, border="B", align=align)
    pdf.ln(ROW)
    for row in ranking.rows:
        cells = (row.rank, row.pattern_id, row.rating, row.success_rate, row.roi, row.cost_saved)
        for (name, width, align), text in zip(COLUMNS, cells, strict=True):
            _style(pdf, "B" if name == "Pattern" else "", 9.5, INK)
            pdf.cell(width, ROW, _fit(pdf, _latin1(text), width), align=align)
        pdf.ln(ROW)
        _style(pdf, "I", 9, MUTED)
        indent = COLUMNS[0][1]
        pdf.set_x(MARGIN + indent)
        pdf.multi_cell(
            WIDTH - indent,
            4.5,
            _latin1(f"Recommendation: {row.recommendation}"),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.ln(1)


def _style(pdf: FPDF, style: str, size: float, color: tuple[int, int, int]) -> None:
    pdf.set_font(FONT, style, size)
    pdf.set_text_color(*color)


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """`text`, shortened with `...` until it fits a cell `width` mm wide (with its padding)."""
    room = width - 2 * pdf.c_margin
    if pdf.get_string_width(text) <= room:
        return text
    while text and pdf.get_string_width(text + "...") > room:
        text = text[:-1]
    return text + "..."


def _latin1(text: str) -> str:
    """`text` in the core fonts' Latin-1, any other character as `?`."""
    return text.encode("latin-1", "replace").decode("latin-1")
