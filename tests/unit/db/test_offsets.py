"""worker/db/offsets.py is the one module with SQL that reads or writes consumer_offsets."""

from __future__ import annotations

import re
from pathlib import Path

WORKER = Path(__file__).parents[3] / "worker"
OWNER = WORKER / "db" / "offsets.py"
# A statement naming the table: FROM, JOIN, INTO, UPDATE, DELETE FROM, TABLE (LOCK TABLE ...).
STATEMENT = re.compile(r"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+consumer_offsets\b", re.IGNORECASE)


def test_only_db_offsets_has_statements_on_consumer_offsets() -> None:
    """Every statement on consumer_offsets lives in worker/db/offsets.py: a reader elsewhere
    (another module borrowing the batch writer, say) would be a second way to load offsets,
    and a writer elsewhere a second set of rules for moving them."""
    elsewhere = [
        f"{path.relative_to(WORKER.parent)}:{number}: {line.strip()}"
        for path in sorted(WORKER.rglob("*.py"))
        if path != OWNER
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if STATEMENT.search(line) and not line.lstrip().startswith("#")
    ]
    assert elsewhere == []
    assert STATEMENT.search(OWNER.read_text())  # the pattern still finds what it looks for


def test_the_pattern_finds_statements_and_not_prose() -> None:
    """What the guard counts as a statement: SQL keywords before the table's name."""
    assert STATEMENT.search("SELECT next_offset FROM consumer_offsets WHERE")
    assert STATEMENT.search("    ON CONFLICT ... INSERT INTO consumer_offsets AS o")
    assert STATEMENT.search("UPDATE consumer_offsets SET")
    assert not STATEMENT.search("the group's consumer_offsets rows")
