"""The text report reproduces seed 000's "Output Format" line for line from the seed's figures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from worker.roi.analytics import Analytics, PatternAnalytics
from worker.roi.methodology import Rating, Totals, Trend, Window, rate, wilson_lower_bound
from worker.roi.report import Request, render

D = Decimal

# Seed 000, step 5, "Output Format", verbatim (the seed's own code block).
SEED_OUTPUT = """\
================================================================================
PATTERN ROI SUMMARY
================================================================================

TOP PERFORMERS (by ROI)
1. Pattern: test-retry-automation
   Executions: 150 (148 successful, 98.7% success rate)
   Time saved: 3,450 seconds (57.5 minutes)
   Cost saved: $425.50
   ROI: 312%
   Rating: EXCELLENT ⭐⭐⭐

2. Pattern: dependency-cache
   Executions: 200 (195 successful, 97.5% success rate)
   Time saved: 4,200 seconds (70 minutes)
   Cost saved: $520.00
   ROI: 285%
   Rating: EXCELLENT ⭐⭐⭐

UNDERPERFORMERS (needs attention)
1. Pattern: auto-lint-fix
   Executions: 45 (28 successful, 62.2% success rate)
   Time saved: -180 seconds (NEGATIVE)
   Cost saved: -$22.00 (NEGATIVE)
   ROI: -15%
   Rating: FAILED ❌
   Recommendation: Revoke approval and investigate failures

OVERALL METRICS
Total patterns tracked: 12
Total executions: 1,450
Total time saved: 12,500 seconds (3.5 hours)
Total cost saved: $1,540.00
Average success rate: 91.2%
"""


def _pattern(pattern_id: str, totals: Totals) -> PatternAnalytics:
    return PatternAnalytics(
        pattern_id=pattern_id,
        totals=totals,
        previous=None,
        rating=rate(totals),
        wilson_lower_bound=wilson_lower_bound(totals.successful_executions, totals.executions),
        trend=Trend.STABLE,
        success_rate_change=None,
        execution_time=None,
        first_executed_at=None,
        last_executed_at=None,
    )


def seed_analytics() -> Analytics:
    """The seed's three shown patterns plus nine it does not show, summing to its overall line.

    Investments are chosen so the ROIs round to the seed's (425.50 / 136.38 = 312.0 %,
    520.00 / 182.46 = 285.0 %, -22.00 / 146.67 = -15.0 %). The nine others: one good pattern
    (ROI 205.5 %, below both top performers) and eight with too few executions to rate, which
    bring the totals to 1,450 executions, 1,322 successful (91.17 %), 12,500 s and $1,540.00.
    """
    shown = [
        _pattern("test-retry-automation", Totals(150, 148, D(3450), D("425.50"), D("136.38"))),
        _pattern("dependency-cache", Totals(200, 195, D(4200), D("520.00"), D("182.46"))),
        _pattern("auto-lint-fix", Totals(45, 28, D(-180), D("-22.00"), D("146.67"))),
    ]
    unshown = [_pattern("bulk-pattern", Totals(1015, 911, D(5030), D("616.50"), D("300.00")))]
    unshown += [_pattern(f"new-pattern-{n}", Totals(5, 5)) for n in range(8)]
    return Analytics(
        generated_at=datetime(2026, 5, 20, 12, 0, tzinfo=UTC),
        window=Window.parse(None, date(2026, 5, 20)),
        min_executions=10,
        patterns=(*shown, *unshown),
    )


def test_seed_patterns_are_rated_as_the_seed_shows() -> None:
    """The fixture is faithful: the seed's ratings, and the unshown patterns rank below them."""
    ratings = {p.pattern_id: p.rating for p in seed_analytics().patterns}
    assert ratings["test-retry-automation"] is Rating.EXCELLENT
    assert ratings["dependency-cache"] is Rating.EXCELLENT
    assert ratings["auto-lint-fix"] is Rating.FAILED
    assert ratings["bulk-pattern"] is Rating.GOOD


def paragraphs(text: str) -> list[list[str]]:
    """The runs of non-blank lines of `text`, in order."""
    return [block.splitlines() for block in text.strip("\n").split("\n\n")]


def test_summary_text_matches_the_seed_output_line_for_line() -> None:
    """Each of the seed's paragraphs starts one of ours, in the seed's order: our extra lines
    (flags, changes, further figures) only ever follow the seed's, and extra paragraphs only
    sit between the seed's."""
    ours = iter(paragraphs(render(seed_analytics(), Request("summary", limit=2))))
    for seed_paragraph in paragraphs(SEED_OUTPUT):
        match = next((p for p in ours if p[: len(seed_paragraph)] == seed_paragraph), None)
        assert match is not None, "\n".join(seed_paragraph)


def test_entries_are_separated_by_a_blank_line() -> None:
    """Two ranked entries in a section: the second starts after an empty line, as in the seed."""
    text = render(seed_analytics(), Request("top_performers", limit=2))
    assert "   Rating: EXCELLENT ⭐⭐⭐\n\n2. Pattern: dependency-cache\n" in text
    assert text.endswith("   Rating: EXCELLENT ⭐⭐⭐\n")
