"""The metric contract of docs/metrics.md, and the roi_* metrics a PromQL expression uses.

Shared by the alert and dashboard tests. Enough of PromQL to find metric names: string
literals are dropped first, so label values such as job="roi-worker" are never taken for one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

METRICS_DOC: Final = Path(__file__).parents[1] / "docs" / "metrics.md"
DATABASE_SECTION: Final = "Per pattern and totals (from the database)"
HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")

_ROW = re.compile(r"^\| `(roi_[a-z_]+)` \| (\w+) \|", re.MULTILINE)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![\w:])roi_[a-zA-Z0-9_:]*")
# What may stand right before a database-backed metric: `max(` or `max by (...) (`, possibly
# with a range function such as increase( in between.
_UNDER_MAX = re.compile(
    r"\bmax\s*(?:by\s*\([^()]*\)\s*)?\(\s*(?:(?:increase|rate|irate|delta|idelta|deriv)\s*\(\s*)?$"
)


def documented(text: str | None = None) -> dict[str, str]:
    """Metric name -> type, from the tables of docs/metrics.md (as its integration test reads)."""
    return dict(_ROW.findall(METRICS_DOC.read_text(encoding="utf-8") if text is None else text))


def database_backed() -> set[str]:
    """The metrics read from the database, which every replica serves with the same values."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    (section,) = [s for s in sections if s.startswith(DATABASE_SECTION)]
    return set(documented(section))


def _blank(expr: str) -> str:
    """`expr` with its string literals blanked out (not deleted: offsets stay those of `expr`)."""
    return _STRING.sub(lambda match: " " * len(match[0]), expr)


def metric_names(expr: str) -> set[str]:
    """The roi_* metric families an expression reads: histogram series (_bucket, _sum, _count)
    under the histogram's documented name, anything else as written."""
    known = documented()
    names = set()
    for match in _NAME.finditer(_blank(expr)):
        name = match[0]
        for suffix in HISTOGRAM_SUFFIXES:
            base = name.removesuffix(suffix)
            if name.endswith(suffix) and known.get(base) == "histogram":
                name = base
        names.add(name)
    return names


def not_under_max(expr: str, metrics: set[str]) -> list[str]:
    """The uses of `metrics` in `expr` that are not the direct argument of a max() aggregation
    (optionally through a range function: max by (pattern_id) (increase(m[1h])))."""
    blanked = _blank(expr)
    wrong = []
    for match in _NAME.finditer(blanked):
        if match[0] in metrics and not _UNDER_MAX.search(blanked[: match.start()]):
            wrong.append(match[0])
    return wrong
