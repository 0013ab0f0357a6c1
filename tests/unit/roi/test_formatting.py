"""Display formatting: exact amounts rounded half up only when shown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.roi.formatting import duration, fraction_as_percent, number, percent, usd


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1234567.891"), "$1,234,567.89"),
        (Decimal("-1234.565"), "-$1,234.57"),
        (Decimal("0.005"), "$0.01"),
        (Decimal("-0.004"), "$0.00"),
        (Decimal(0), "$0.00"),
    ],
)
def test_usd_has_cents_and_thousands_separators(amount: Decimal, text: str) -> None:
    """Rounded half up, sign before the dollar sign, never -$0.00."""
    assert usd(amount) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (Decimal(45), "45 seconds"),
        (Decimal("59.4"), "59 seconds"),
        (Decimal(3450), "57.5 minutes"),
        (Decimal(4200), "70 minutes"),
        (Decimal("7199.9"), "120 minutes"),
        (Decimal(7200), "2 hours"),
        (Decimal(12500), "3.5 hours"),
        (Decimal(12600), "3.5 hours"),
        (Decimal(-180), "-3 minutes"),
        (Decimal(-9000), "-2.5 hours"),
    ],
)
def test_duration_picks_the_unit_a_person_reads(seconds: Decimal, text: str) -> None:
    """Seed 000's units: under a minute in seconds, under two hours in minutes, else hours;
    one decimal place, dropped when it is zero ("70 minutes", as the seed writes it)."""
    assert duration(seconds) == text


def test_numbers_and_percentages_round_half_up_without_negative_zero() -> None:
    """0.05 rounds up, -0.04 shows as 0, None as n/a."""
    assert number(Decimal("1234.5")) == "1,235"
    assert number(Decimal("-0.04"), Decimal("0.1")) == "0.0"
    assert percent(Decimal("98.65")) == "98.7 %"
    assert percent(None) == "n/a"
    assert fraction_as_percent(Decimal("0.9866"), space="") == "98.7%"
