"""How exact amounts are shown to people: rounded half up, for display only, never before."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Final, Literal

# The formats `roi-worker report` writes (worker.roi.report), named here, where the command
# line can offer them without loading the report and its database reads.
Format = Literal["text", "json", "csv", "markdown"]
FORMATS: Final[tuple[Format, ...]] = ("text", "json", "csv", "markdown")

CENT: Final = Decimal("0.01")
TENTH: Final = Decimal("0.1")
ONE: Final = Decimal(1)


def round_half_up(value: Decimal, step: Decimal) -> Decimal:
    """`value` rounded half up to a multiple of `step`, however many digits it has; never -0."""
    with localcontext() as context:
        # Enough digits for the rounded result: quantize fails rather than lose any.
        context.prec = max(28, value.adjusted() - int(step.as_tuple().exponent) + 2)
        return value.quantize(step, ROUND_HALF_UP) + 0


def number(value: Decimal, step: Decimal = ONE) -> str:
    """`value` rounded half up to a multiple of `step` (1, 0.1, 0.01), with thousands separators."""
    places = max(0, -int(step.as_tuple().exponent))
    return f"{round_half_up(value, step):,.{places}f}"


def usd(amount: Decimal) -> str:
    """-$1,234.57: dollars with cents and thousands separators, rounded half up."""
    cents = round_half_up(amount, CENT)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def percent(value: Decimal | None, step: Decimal = TENTH, *, space: str = " ") -> str:
    """A percentage (already multiplied by 100) such as `98.7 %`; `n/a` for None."""
    return "n/a" if value is None else f"{number(value, step)}{space}%"


def fraction_as_percent(value: Decimal | None, step: Decimal = TENTH, *, space: str = " ") -> str:
    """A fraction from 0 to 1 shown as a percentage: 0.987 -> `98.7 %`."""
    return percent(None if value is None else 100 * value, step, space=space)


def duration(seconds: Decimal) -> str:
    """Seconds in the unit a person reads best, as seed 000's report shows them: `45 seconds`,
    under two hours in minutes (`57.5 minutes`, `70 minutes`), else hours (`3.5 hours`).

    Minutes and hours keep one decimal place only when it is not zero, so whole numbers read
    as the seed writes them ("70 minutes", not "70.0 minutes").
    """
    magnitude = abs(seconds)
    if magnitude < 60:
        return f"{number(seconds)} seconds"
    if magnitude < 2 * 3600:
        return f"{_tenths(seconds / 60)} minutes"
    return f"{_tenths(seconds / 3600)} hours"


def _tenths(value: Decimal) -> str:
    """`value` rounded half up to a tenth, without a trailing `.0`: 57.5 -> 57.5, 70.04 -> 70."""
    rounded = round_half_up(value, TENTH)
    return number(rounded, ONE if rounded == rounded.to_integral_value() else TENTH)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Lines of columns padded to their widest cell and two spaces apart, each column aligned
    by its character of `align` ('<' left, '>' right); no trailing spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            f"{cell:{side}{width}}" for cell, side, width in zip(row, align, widths, strict=True)
        ).rstrip()
        for row in [header, *rows]
    ]
