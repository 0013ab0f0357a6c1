"""Progress on stderr: a bar redrawn in place on a terminal, plain lines now and then in a file,
with the rate and the time left."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from worker.cli import progress
from worker.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """time.monotonic for worker.cli.progress, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(100.0)
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=fake))
    return fake


def test_a_terminal_gets_a_bar_redrawn_in_place_at_most_every_fifth_of_a_second(
    clock: Clock,
) -> None:
    """On a terminal each state overwrites the last (carriage return, erase to the end of the
    line), no more than every 0.2 s, and finish ends the bar with a newline."""
    stream = Terminal()
    bar = Progress("replay", 200, stream=stream)

    clock.now = 110.0
    bar.update(50)  # 5/s, 150 left: 30 s
    clock.now = 110.1
    bar.update(60)  # too soon: not drawn
    clock.now = 110.25
    bar.update(100)  # 0.25 s after the last drawing: 100 in 10.25 s, 100 left: 10.25 s
    clock.now = 120.0
    bar.update(200)  # 20 s in all: 10/s, nothing left
    bar.finish()

    assert stream.getvalue() == (
        "\rreplay [#######-----------------------]  25.0%  50/200  5/s  ETA 0:00:30\x1b[K"
        "\rreplay [###############---------------]  50.0%  100/200  10/s  ETA 0:00:10\x1b[K"
        "\rreplay [##############################] 100.0%  200/200  10/s  ETA 0:00:00\x1b[K"
        "\rreplay [##############################] 100.0%  200/200  10/s  ETA 0:00:00\x1b[K"
        "\n"
    )


def test_a_file_gets_plain_lines_at_most_one_every_five_seconds(clock: Clock) -> None:
    """In a file or a pipe each shown state is a line of its own, without bar or control
    characters, at most one per 5 s; finish always writes the last state."""
    stream = io.StringIO()
    log = Progress("replay", 1000, stream=stream)
    for now, done in [(101.0, 10), (103.0, 20), (105.9, 30), (106.0, 40), (110.9, 50)]:
        clock.now = now
        log.update(done)
    clock.now = 112.0
    log.finish()

    assert stream.getvalue().splitlines() == [
        "replay   1.0%  10/1,000  10/s  ETA 0:01:39",  # 990 left at 10/s
        "replay   4.0%  40/1,000  7/s  ETA 0:02:24",  # 40 in 6 s: 6.67/s, 960 left
        "replay   5.0%  50/1,000  4/s  ETA 0:03:48",  # 50 in 12 s: 4.17/s, 950 left
    ]


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "text"),
    [
        # 12,345.67/s; 8,765,433 left: 710 s
        (
            1_234_567,
            10_000_000,
            100.0,
            "backfill  12.3%  1,234,567/10,000,000  12,346/s  ETA 0:11:50",
        ),
        # 0.1/s shown as 0/s; 9,999 left: 99,990 s, hours beyond a day are not wrapped
        (1, 10_000, 10.0, "backfill   0.0%  1/10,000  0/s  ETA 27:46:30"),
        # 2/s, 119 left: 59.5 s, rounded half up
        (2, 121, 1.0, "backfill   1.7%  2/121  2/s  ETA 0:01:00"),
        # within the first second: 600/s, 700 left
        (300, 1000, 0.5, "backfill  30.0%  300/1,000  600/s  ETA 0:00:01"),
        # nothing read yet: no rate, no estimate
        (0, 500, 3.0, "backfill   0.0%  0/500  0/s  ETA --:--"),
        # nothing to read at all: complete
        (0, 0, 1.0, "backfill 100.0%  0/0  0/s  ETA --:--"),
        (500, 500, 2.0, "backfill 100.0%  500/500  250/s  ETA 0:00:00"),
    ],
)
def test_a_line_has_the_share_counts_rate_and_time_left(
    clock: Clock, done: int, total: int, elapsed: float, text: str
) -> None:
    """Share with one decimal, counts and rate with thousands separators, the time left at
    the rate so far as H:MM:SS, and --:-- while no rate is known."""
    line = Progress("backfill", total, stream=io.StringIO())
    line.update(done)
    assert line.line(100.0 + elapsed) == text


@pytest.mark.parametrize(
    ("done", "bar"),
    [(0, "-" * 30), (1, "-" * 30), (10, "###" + "-" * 27), (99, "#" * 29 + "-"), (100, "#" * 30)],
)
def test_the_bar_fills_in_thirtieths_rounded_down(clock: Clock, done: int, bar: str) -> None:
    """The bar has 30 characters; a character is filled once its whole thirtieth is done."""
    line = Progress("replay", 100, stream=Terminal())
    line.update(done)
    assert line.line(101.0).startswith(f"replay [{bar}] ")
