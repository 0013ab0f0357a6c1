"""StallWatch: which owned partitions had events to store and stored none for too long."""

from __future__ import annotations

from worker.consume.stall import StallWatch


def test_a_partition_is_stuck_only_after_the_limit_without_progress() -> None:
    """Assigned at 0 with a limit of 10 s: not stuck at 10 s, stuck at 10.5 s."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["a"], now=0)
    assert watch.stuck(now=10) == {}
    assert watch.stuck(now=10.5) == {"a": 10.5}


def test_a_stored_offset_that_moves_forward_is_progress() -> None:
    """Each forward move restarts the clock; the same offset again does not."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["a"], now=0)
    assert watch.stored("a", 100, now=5)
    assert not watch.stored("a", 100, now=12)
    assert watch.stuck(now=14) == {}
    assert watch.stuck(now=16) == {"a": 11}
    assert watch.stored("a", 101, now=16)
    assert watch.stuck(now=16) == {}


def test_no_lag_is_progress_and_lag_is_not() -> None:
    """A partition with nothing to store is never stuck; one with lag keeps its clock."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["idle", "behind"], now=0)
    assert watch.lag("idle", 0, now=9)
    assert not watch.lag("behind", 500, now=9)
    assert watch.stuck(now=15) == {"behind": 15}


def test_an_assignment_is_not_progress_of_the_worker() -> None:
    """last_progress moves with stored offsets and lag readings, not with assignments, so a
    stalled worker that is handed new partitions is not taken for one that stores again."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["a"], now=3)
    assert watch.last_progress == float("-inf")
    watch.stored("a", 7, now=4)
    assert watch.last_progress == 4


def test_revoked_and_unknown_partitions_are_not_watched() -> None:
    """A partition no longer owned can be neither stuck nor progressing."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["a", "b"], now=0)
    watch.revoked(["a"])
    assert watch.stuck(now=100) == {"b": 100}
    assert not watch.stored("a", 5, now=100)
    assert not watch.lag("zzz", 0, now=100)
    assert watch.stuck(now=100) == {"b": 100}


def test_handing_back_cannot_hide_a_stall() -> None:
    """A partition assigned back soon after a hand back keeps its clock; one assigned back
    after the limit (another replica had it meanwhile) starts afresh."""
    watch: StallWatch[str] = StallWatch(10)
    watch.assigned(["a", "b"], now=0)
    watch.hand_back(now=11)
    assert watch.stuck(now=11) == {}
    watch.assigned(["a"], now=12)
    assert watch.stuck(now=12) == {"a": 12}
    watch.assigned(["b"], now=25)
    assert watch.stuck(now=25) == {"a": 25}
