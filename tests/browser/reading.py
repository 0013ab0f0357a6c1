"""Reading a page as the tests compare it: the figure a text shows, an attribute reached
within a deadline, the element the keyboard reaches."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from playwright.sync_api import Locator, Page

from tests.helpers import wait_until

WAIT_SECONDS: Final = 15.0
# A number as a page writes it: an optional sign (ASCII or the typographic minus), digits with
# optional thousands separators, optional decimals.
_NUMBER: Final = re.compile(r"([-\u2212]?)\s?\$?\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
MAX_TABS: Final = 200  # Tab presses that may pass before the element is reached


def numbers_shown(text: str) -> list[tuple[Decimal, int]]:
    """Every number in `text`, in order, as written (thousands separators dropped), with the
    number of decimals it shows."""
    return [
        (Decimal(f"{'-' if sign else ''}{whole.replace(',', '')}{decimals}"), len(decimals[1:]))
        for sign, whole, decimals in _NUMBER.findall(text)
    ]


def shows(text: str, value: str, *, scales: tuple[int, ...] = (1,)) -> bool:
    """Whether `text` shows `value` (an exact decimal string), times one of `scales` (100 for a
    fraction shown as a percentage), rounded half up to the decimals the text shows. Signs are
    not compared: a page may say "down 4.2 %" for -4.2."""
    exact = Decimal(value)
    for shown, places in numbers_shown(text):
        for scale in scales:
            rounded = (exact * scale).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
            if abs(rounded) == abs(shown):
                return True
    return False


def wait_for_attribute(
    locator: Locator, name: str, expected: str, timeout: float = WAIT_SECONDS
) -> None:
    """Waits until the element's attribute `name` is `expected`; fails naming the last value."""
    seen: list[str | None] = []

    def reached() -> bool:
        seen.append(locator.get_attribute(name))
        return seen[-1] == expected

    try:
        wait_until(reached, timeout=timeout, what=f"{name}={expected!r}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it stayed {seen[-1]!r} ({locator})") from None


def tab_to(page: Page, selector: str) -> None:
    """Presses Tab until the focused element matches `selector`, as a keyboard user would."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{MAX_TABS} presses of Tab never reached {selector}")
