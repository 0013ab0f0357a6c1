"""Small test utilities shared by every tier."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Polls `probe` until it returns something truthy and returns that; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def drop_database(conn: psycopg.Connection[Any], name: str, *, timeout: float) -> None:
    """DROP DATABASE ... WITH (FORCE) over an autocommit connection, retried: FORCE may not
    end an autovacuum worker busy in the database for a non-superuser; it finishes (or is
    cancelled by a plain retry) soon. Fails like wait_until after `timeout` s."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))

    def dropped() -> bool:
        try:
            conn.execute(drop)
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            return False
        return True

    wait_until(dropped, timeout=timeout, interval=0.5, what=f"DROP {name}")


class CountingCursor(psycopg.Cursor[Any]):
    """A cursor that keeps, in one list for every such cursor, the statements it executes: set
    it as a connection's `cursor_factory` to count what code under test runs. Clear
    `statements` before counting."""

    statements: ClassVar[list[Any]] = []

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        self.statements.append(query)
        return super().execute(query, params, prepare=prepare, binary=binary)
