"""How the page shows the API's strings: thousands separators, a dollar sign, a percent sign.

Stored amounts (sums of money) keep every digit the API gives, by string manipulation only (the
same rules as worker/api/static/dashboard.js's `money`). Derived figures (rates, ROI, changes,
projections) are rounded half up for display, exactly as the text report rounds them
(worker.roi.formatting); each element's data-value keeps the API's exact string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Final

from ...roi import formatting as report_formatting

_DECIMAL: Final = re.compile(r"^(-?)([0-9]+)(\.[0-9]+)?$")
MISSING: Final = "—"


def grouped(text: str | int | None) -> str:
    """'-1234567.50' -> '-1,234,567.50'; None -> an em dash; anything else as it is."""
    if text is None:
        return MISSING
    found = _DECIMAL.match(str(text))
    if found is None:
        return str(text)
    sign, digits, fraction = found.groups()
    head = len(digits) % 3 or 3
    groups = [digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))]
    return f"{sign}{','.join(groups)}{fraction or ''}"


def money(text: str | None) -> str:
    """'-1234.5' -> '-$1,234.5': the API's digits, grouped, after a dollar sign."""
    if text is None:
        return MISSING
    shown = grouped(text)
    return f"-${shown[1:]}" if shown.startswith("-") else f"${shown}"


def percent(text: str | None) -> str:
    """A derived percentage, '27.983105' -> '28.0 %': rounded half up for display only, as the
    text report shows it (worker.roi.formatting); data-value keeps the API's digits."""
    return MISSING if text is None else _shown(text, report_formatting.percent)


def fraction_as_percent(text: str | None) -> str:
    """A rate the API gives as a fraction ('0.986667') shown as a percentage ('98.7 %'),
    rounded half up for display only."""
    return MISSING if text is None else _shown(text, report_formatting.fraction_as_percent)


def rounded_money(text: str | None) -> str:
    """A derived amount (a projection), '418.609411' -> '$418.61': to the cent, half up, for
    display only. Stored amounts use `money`, which shows every digit."""
    return MISSING if text is None else _shown(text, report_formatting.usd)


def _shown(text: str, show: Callable[[Decimal], str]) -> str:
    try:
        return show(Decimal(text))
    except InvalidOperation:
        return text


def words(text: str | None) -> str:
    """'insufficient_data' -> 'insufficient data'."""
    return MISSING if text is None else text.replace("_", " ")
