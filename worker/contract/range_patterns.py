"""Regular expressions for ranges of integers, calendar dates and RFC 3339 date-times, for
JSON Schema `pattern`s.

A pattern here matches exactly what it says: the valid dates of a range of years (30 April but
not 31 April, 29 February in leap years only), so a schema can state what the server's parsing
accepts.
They use only what ECMA 262, Python's `re` and Rust's `regex` read alike: no lookaround, no
flags, no `\\d` (Unicode digits in Python), capturing groups only. Anchors are the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import Final

_LONG_MONTHS: Final = (1, 3, 5, 7, 8, 10, 12)
_SHORT_MONTHS: Final = (4, 6, 9, 11)
TIME: Final = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"  # 00:00:00 to 23:59:59, no leap second
OFFSET: Final = "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"  # Z or -23:59 to +23:59


def one_of(strings: Iterable[str]) -> str:
    """A pattern matching exactly `strings`, all of the same length and made of digits."""
    items = sorted(set(strings))
    if not items:
        raise ValueError("no strings to match")
    if len({len(item) for item in items}) != 1:
        raise ValueError("the strings differ in length")
    return _trie(items)


def _trie(items: list[str]) -> str:
    if not items[0]:
        return ""
    # Digits with the same rest share it: {"04", "08", "24", "28"} is [02][48].
    rests = {head: _trie([item[1:] for item in group]) for head, group in _by_head(items)}
    heads_of: dict[str, list[str]] = {}
    for head, rest in rests.items():  # in digit order
        heads_of.setdefault(rest, []).append(head)
    branches = [_digit_class(heads) + rest for rest, heads in heads_of.items()]
    return branches[0] if len(branches) == 1 else "(" + "|".join(branches) + ")"


def _by_head(items: list[str]) -> Iterable[tuple[str, list[str]]]:
    for head, group in groupby(items, key=lambda item: item[0]):
        yield head, list(group)


def _digit_class(digits: list[str]) -> str:
    if len(digits) == 1:
        return digits[0]
    values = sorted(int(digit) for digit in digits)
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else "".join(map(str, r)) for r in runs]
    return "[" + "".join(parts) + "]"


def integer(low: int, high: int) -> str:
    """The integers from `low` to `high` (0 <= low <= high), written without leading zeros."""
    if not 0 <= low <= high:
        raise ValueError("need 0 <= low <= high")
    branches = []
    for width in range(len(str(low)), len(str(high)) + 1):
        first, last = max(low, 10 ** (width - 1) if width > 1 else 0), min(high, 10**width - 1)
        branches.append(one_of(str(number) for number in range(first, last + 1)))
    return branches[0] if len(branches) == 1 else "(" + "|".join(branches) + ")"


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days(months: Iterable[int], last_day: int) -> str | None:
    chosen = [f"{month:02d}" for month in months]
    if not chosen:
        return None
    return f"{one_of(chosen)}-{one_of(f'{day:02d}' for day in range(1, last_day + 1))}"


def _month_days(months: range) -> str:
    """MM-DD of every day of `months`, 29 February excluded."""
    parts = [
        _days([m for m in _LONG_MONTHS if m in months], 31),
        _days([m for m in _SHORT_MONTHS if m in months], 30),
        _days([2] if 2 in months else [], 28),
    ]
    return "(" + "|".join(part for part in parts if part) + ")"


def date(first_year: int, last_year: int, last_month: int = 12) -> str:
    """YYYY-MM-DD: every calendar date from `first_year`-01-01 to the end of `last_month` of
    `last_year` (Gregorian, years 0000 to 9999)."""
    if not 0 <= first_year <= last_year <= 9999 or not 1 <= last_month <= 12:
        raise ValueError("need 0 <= first_year <= last_year <= 9999 and a month 1 to 12")
    whole = range(first_year, last_year + (last_month == 12))
    branches = []
    if whole:
        years = one_of(f"{year:04d}" for year in whole)
        branches.append(f"{years}-{_month_days(range(1, 13))}")
    if last_month < 12:
        branches.append(f"{last_year:04d}-{_month_days(range(1, last_month + 1))}")
    leap = [f"{year:04d}" for year in range(first_year, last_year + 1) if is_leap(year)]
    if last_month < 2 and is_leap(last_year):
        leap.remove(f"{last_year:04d}")
    if leap:
        branches.append(f"{one_of(leap)}-02-29")
    return "(" + "|".join(branches) + ")"


def date_time(first_year: int, last_year: int, last_month: int = 12) -> str:
    """An RFC 3339 date-time (`T`, `t` or a space between date and time, 1 to 9 digits of a
    second, an offset of at most 23:59) on a date that `date()` matches."""
    return f"{date(first_year, last_year, last_month)}[Tt ]{TIME}(\\.[0-9]{{1,9}})?{OFFSET}"
