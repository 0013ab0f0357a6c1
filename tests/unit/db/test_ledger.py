"""The offset ledger's pure parts: counting a batch's messages, planning its rows, and the
tiling check reconcile runs on each partition."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from worker.cli.reconcile import render
from worker.db.ledger import (
    BATCH,
    OUTCOMES,
    REPLAY,
    RESET,
    START,
    UNAUDITED,
    LedgerRow,
    Outcomes,
    Stored,
    Tally,
    move_rows,
    plan,
    tally,
)
from worker.errors import FatalError
from worker.ops.reconcile import Problem, Reconciliation, Row, audit_partition, check_order
from worker.types import Partition, Source

T = "events"
P0, P1 = (T, 0), (T, 1)
INSERTED, DUPLICATES, CONFLICTS, REFUSED, EXPIRED, DEAD = range(len(OUTCOMES))


def sources(partition: int, *offsets: int) -> list[Source]:
    return [Source(T, partition, offset) for offset in offsets]


def outcomes() -> Outcomes:
    """A batch: partition 0 offsets 10-19 (one gap at 15), partition 1 offsets 3-4."""
    return [
        (INSERTED, sources(0, 10, 11, 12, 13) + sources(1, 3)),
        (DUPLICATES, sources(0, 14)),
        (CONFLICTS, sources(0, 16)),
        (REFUSED, sources(0, 17)),
        (EXPIRED, sources(0, 18)),
        (DEAD, sources(0, 19) + sources(1, 4)),
    ]


def never(bounds: Mapping[Partition, tuple[int, int]]) -> dict[Partition, Tally]:
    raise AssertionError(f"no recount expected, asked for {bounds}")


def test_tally_counts_each_partition_by_outcome_with_its_lowest_and_highest_offset() -> None:
    """Every message counts once, under its partition and outcome."""
    counted = tally(outcomes())
    assert counted[P0] == Tally(10, 19, [4, 1, 1, 1, 1, 1])
    assert counted[P1] == Tally(3, 4, [1, 0, 0, 0, 0, 1])


def test_tally_within_bounds_leaves_out_the_other_offsets() -> None:
    """With bounds, only the offsets in [low, high) of each partition count."""
    counted = tally(outcomes(), {P0: (14, 18)})
    assert counted == {P0: Tally(14, 17, [0, 1, 1, 1, 0, 0])}


def test_a_batch_row_starts_at_the_stored_offset_and_counts_the_skipped_offsets() -> None:
    """The range begins where the group stood (not at the first message), and offsets never
    delivered (the gap at 15, and 8-9 before the first message) count as skipped."""
    planned = plan({P0: 20, P1: 5}, {P0: Stored(8, 8), P1: Stored(3, 3)}, tally(outcomes()), never)
    assert planned.moves == {}
    assert planned.rows == [
        LedgerRow(BATCH, T, 0, 8, 20, (4, 1, 1, 1, 1, 1, 3)),
        LedgerRow(BATCH, T, 1, 3, 5, (1, 0, 0, 0, 0, 1, 0)),
    ]
    assert all(sum(row.counts) == row.size for row in planned.rows)


def test_a_partitions_first_batch_begins_its_ledger_with_a_start_row() -> None:
    """A batch that created the partition's stored offset, or found one another writer made
    at 0, writes a start row before its range; a later batch does not."""
    counted = tally(outcomes())
    first = plan(
        {P0: 20, P1: 5}, {P0: Stored(10, 10), P1: Stored(0, 0)}, counted, never, created={P0}
    )
    assert [(r.kind, r.partition, r.first_offset, r.next_offset) for r in first.rows] == [
        (START, 0, 10, 10),
        (BATCH, 0, 10, 20),
        (START, 1, 0, 0),
        (BATCH, 1, 0, 5),
    ]
    later = plan({P0: 20}, {P0: Stored(10, 10)}, counted, never)
    assert [r.kind for r in later.rows] == [BATCH]


def test_a_batch_behind_the_stored_offset_accounts_only_for_what_is_new() -> None:
    """A worker that lost its partition finishes its batch after the new owner stored up to
    17: its row covers 17-19 only; a batch wholly behind the stored offset writes no row."""
    counted = tally(outcomes())
    planned = plan(
        {P0: 20, P1: 5},
        {P0: Stored(17, 17), P1: Stored(9, 9)},
        counted,
        lambda bounds: tally(outcomes(), bounds),
    )
    assert planned.rows == [LedgerRow(BATCH, T, 0, 17, 20, (0, 0, 0, 1, 1, 1, 0))]


def test_a_move_by_a_writer_without_a_ledger_is_caught_up_first() -> None:
    """Offsets an older release stored are recorded unaudited, a hand rewind as a reset,
    each before the batch's own row."""
    counted = tally(outcomes())
    planned = plan({P0: 20, P1: 5}, {P0: Stored(10, 2), P1: Stored(3, 9)}, counted, never)
    assert [(r.kind, r.partition, r.first_offset, r.next_offset) for r in planned.rows] == [
        (UNAUDITED, 0, 2, 10),
        (BATCH, 0, 10, 20),
        (RESET, 1, 9, 3),
        (BATCH, 1, 3, 5),
    ]


def test_a_replay_that_starts_elsewhere_records_the_move() -> None:
    """A replay's first batch of a partition starts at the plan's start: a replay row moves
    the group there (backwards here), then the batch row begins at it."""
    counted = tally(outcomes())
    planned = plan({P0: 20}, {P0: Stored(500, 500)}, counted, never, starts={P0: 10})
    assert planned.moves == {P0: 10}
    assert [(r.kind, r.first_offset, r.next_offset) for r in planned.rows] == [
        (REPLAY, 500, 10),
        (BATCH, 10, 20),
    ]
    same = plan({P0: 20}, {P0: Stored(10, 10)}, counted, never, starts={P0: 10})
    assert same.moves == {}
    assert [r.kind for r in same.rows] == [BATCH]


def test_messages_outnumbering_their_range_stop_the_batch() -> None:
    """Two messages counted at one offset cannot be accounted for: nothing is written."""
    twice = [(INSERTED, sources(0, 10, 10))]
    with pytest.raises(FatalError, match="does not add up"):
        plan({P0: 11}, {P0: Stored(10, 10)}, tally(twice), never)


def test_an_operator_move_records_a_jump_unless_it_stays_put() -> None:
    """offsets reset: a row per moved partition, a start for a partition with none stored,
    and nothing for one that stays."""
    rows = move_rows(T, [(0, Stored(100, 100), 40), (1, None, 7), (2, Stored(5, 5), 5)], RESET)
    assert [(r.kind, r.partition, r.first_offset, r.next_offset) for r in rows] == [
        (RESET, 0, 100, 40),
        (RESET, 1, 7, 7),
    ]


# --------------------------------------------------------------------------- the tiling check

KEY = ("g", T, 0)
_ids = iter(range(1, 1_000_000))


def batch(first: int, end: int, skipped: int = 0) -> Row:
    """A batch row whose messages were all inserted, but for `skipped` offsets."""
    return Row(next(_ids), BATCH, first, end, (end - first - skipped, 0, 0, 0, 0, 0, skipped), 1)


def jump(kind: str, first: int, end: int) -> Row:
    return Row(next(_ids), kind, first, end)


def begin(offset: int) -> Row:
    """The start row a group's first batch of a partition writes."""
    return jump(START, offset, offset)


def kinds(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems]


def test_ranges_that_tile_up_to_the_stored_offset_are_accounted_for() -> None:
    """Consecutive batches, written in any order, from the first to the stored offset."""
    rows = [begin(0), batch(0, 10), batch(20, 30, skipped=2), batch(10, 20)]
    audit = audit_partition(KEY, rows, Stored(30, 30))
    assert audit.problems == []
    assert (audit.start, audit.stored, audit.batches, audit.status) == (0, 30, 3, "ok")
    assert audit.counts == [28, 0, 0, 0, 0, 0, 2]


def test_a_missing_range_is_a_gap_named_with_its_offsets() -> None:
    """A batch row gone from the middle, or from the end, leaves a gap reconcile names."""
    later = batch(20, 30)
    middle = audit_partition(KEY, [begin(0), batch(0, 10), later], Stored(30, 30))
    assert kinds(middle.problems) == [
        "gap: group g, events/0: offsets 10 to 19 (10) have no ledger row "
        f"(at ledger row {later.id})"
    ]
    end = audit_partition(KEY, [begin(0), batch(0, 10)], Stored(30, 30))
    assert kinds(end.problems) == [
        "gap: group g, events/0: offsets 10 to 29 (20) have no ledger row (stored offset 30)"
    ]
    assert end.status == "GAP"


def test_ranges_counted_twice_are_an_overlap() -> None:
    """Two rows covering the same offsets, or a row beyond the stored offset, overlap."""
    twice = audit_partition(KEY, [begin(0), batch(0, 10), batch(5, 15)], Stored(15, 15))
    assert [p.kind for p in twice.problems] == ["overlap"]
    assert "offsets 5 to 9 (5) are in more than one ledger row" in str(twice.problems[0])
    beyond = audit_partition(KEY, [begin(0), batch(0, 10)], Stored(8, 8))
    assert [str(p) for p in beyond.problems] == [
        "overlap: group g, events/0: the ledger accounts for offsets 8 to 9 (2) beyond the "
        "stored offset 8"
    ]


def test_counts_that_do_not_add_up_are_a_mismatch() -> None:
    """A batch row whose counts are not its size."""
    wrong = Row(next(_ids), BATCH, 0, 10, (3, 0, 0, 0, 0, 0, 0), 1)
    audit = audit_partition(KEY, [begin(0), wrong], Stored(10, 10))
    assert [p.kind for p in audit.problems] == ["mismatch"]
    assert "counts 3 offsets, not 10" in str(audit.problems[0])


def test_resets_and_replays_explain_the_jumps_they_make() -> None:
    """A reset backwards starts a new stretch that may cover offsets again; a replay forwards
    leaves offsets unread on purpose; both must start where the ledger had reached."""
    rows = [
        begin(0),
        batch(0, 10),
        batch(10, 20),
        jump(RESET, 20, 5),
        batch(5, 20),
        batch(20, 25),
        jump(REPLAY, 25, 40),
        batch(40, 50),
    ]
    audit = audit_partition(KEY, rows, Stored(50, 50))
    assert audit.problems == []
    assert (audit.start, audit.moves, audit.batches) == (0, 2, 5)
    late = audit_partition(
        KEY, [begin(0), batch(0, 10), jump(RESET, 12, 0), batch(0, 12)], Stored(12, 12)
    )
    assert [p.kind for p in late.problems] == ["gap"]
    assert "offsets 10 to 11 (2) have no ledger row (before the reset row" in str(late.problems[0])


def test_a_ledger_whose_first_rows_are_gone_has_no_start() -> None:
    """Without its start row the first batch rows could vanish unnoticed: that is a gap."""
    audit = audit_partition(KEY, [batch(10, 20)], Stored(20, 20))
    assert [p.kind for p in audit.problems] == ["gap"]
    assert "the ledger has no start" in str(audit.problems[0])


def test_check_order_sorts_each_stretch_by_offset_after_its_jump() -> None:
    """Rows in id order become stretches: the jump first, then the ranges by first offset."""
    a, b, r, c, d = batch(10, 20), batch(0, 10), jump(RESET, 20, 0), batch(5, 10), batch(0, 5)
    assert check_order([a, b, r, c, d]) == [b, a, r, d, c]


def test_unaudited_offsets_tile_but_are_not_checked() -> None:
    """Offsets stored before the ledger, and those an older release stored since, are
    unaudited: counted and listed, not failed."""
    rows = [Row(next(_ids), UNAUDITED, 0, 100), batch(100, 110)]
    audit = audit_partition(KEY, rows, Stored(130, 110))
    assert audit.problems == []
    assert audit.unaudited == 100 + 20
    assert audit.notes == [
        "unaudited: group g, events/0: offsets 0 to 99 (100) stored without a ledger (before it "
        "existed, or by a worker of an older release)",
        "unaudited: group g, events/0: offsets 110 to 129 (20) stored by a writer that keeps no "
        "ledger (a worker of an older release?); its next batch records them",
    ]


def test_a_stored_offset_without_rows_or_rows_without_a_stored_offset_do_not_reconcile() -> None:
    """Both sides must exist: rows with no stored offset, or a stored offset the ledger never
    reached, are named; a stored 0 with no rows is nothing to account for."""
    orphan = audit_partition(KEY, [begin(0), batch(0, 10)], None)
    assert [p.kind for p in orphan.problems] == ["mismatch"]
    bare = audit_partition(KEY, [], Stored(40, 40))
    assert [str(p) for p in bare.problems] == [
        "gap: group g, events/0: no ledger row accounts for the offsets stored before 40"
    ]
    assert audit_partition(KEY, [], Stored(0, 0)).problems == []


def test_the_report_shows_a_table_per_group_and_names_each_problem() -> None:
    """render: the partition table, the notes, each problem on a line, and the verdict."""
    good = audit_partition(("g", T, 0), [begin(0), batch(0, 10)], Stored(10, 10))
    bad = audit_partition(("g", T, 1), [begin(0), batch(0, 10), batch(20, 30)], Stored(30, 30))
    text = render(Reconciliation([good, bad], []))
    lines = text.splitlines()
    assert lines[0] == "group g on topic events"
    assert lines[1].split() == [
        "partition",
        "start",
        "stored",
        "batches",
        "inserted",
        "duplicates",
        "conflicts",
        "refused",
        "expired",
        "dead-lettered",
        "skipped",
        "unaudited",
        "moves",
        "status",
    ]
    assert lines[2].split() == ["0", "0", "10", "1", "10", *["0"] * 6, "0", "0", "ok"]
    assert lines[3].split()[-1] == "GAP"
    assert any(line.startswith("gap: group g, events/1: offsets 10 to 19 (10)") for line in lines)
    assert (
        lines[-1]
        == "NOT accounted for: 1 problem in 1 of 2 partitions (docs/operations.md, 'Reconcile')"
    )
    assert render(Reconciliation([good], [])).splitlines()[-1] == (
        "every offset accounted for: 1 partition"
    )
