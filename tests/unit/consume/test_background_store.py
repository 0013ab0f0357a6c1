"""The store thread: one store in flight, its outcome or its exception handed to the loop."""

from __future__ import annotations

import threading

import pytest

from worker.consume.background_store import BackgroundStore, Finished


def test_the_outcome_of_a_store_is_taken_once() -> None:
    store: BackgroundStore[int] = BackgroundStore("test")
    assert not store.busy
    assert store.wait(0) is None  # nothing started
    release = threading.Event()
    store.start(lambda: 42 if release.wait(10) else -1)
    assert store.busy
    assert not store.done
    assert store.wait(0) is None  # still running
    release.set()
    assert store.wait(10) == Finished(42)
    assert not store.busy
    assert store.wait(0) is None  # taken


def test_a_second_store_waits_for_the_first_to_be_taken() -> None:
    store: BackgroundStore[int] = BackgroundStore("test")
    store.start(lambda: 1)
    with pytest.raises(RuntimeError, match="already in flight"):
        store.start(lambda: 2)
    assert store.wait(10) == Finished(1)
    store.start(lambda: 2)
    assert store.wait(10) == Finished(2)


def test_what_a_store_raises_is_raised_by_wait_and_clears_it() -> None:
    def fail() -> int:
        raise ValueError("database gone")

    store: BackgroundStore[int] = BackgroundStore("test")
    store.start(fail)
    with pytest.raises(ValueError, match="database gone"):
        store.wait(10)
    assert not store.busy  # the loop may start it again
    store.start(lambda: 3)
    assert store.wait(10) == Finished(3)


def test_the_store_runs_on_a_named_daemon_thread() -> None:
    seen: list[threading.Thread] = []
    store: BackgroundStore[None] = BackgroundStore("roi-store")
    store.start(lambda: seen.append(threading.current_thread()))
    store.wait(10)
    assert seen[0] is not threading.current_thread()
    assert seen[0].name == "roi-store"
    assert seen[0].daemon


def test_every_store_runs_on_the_same_thread() -> None:
    store: BackgroundStore[threading.Thread] = BackgroundStore("roi-store")
    threads = []
    for _ in range(3):
        store.start(threading.current_thread)
        finished = store.wait(10)
        assert finished is not None
        threads.append(finished.value)
    assert threads[0] is threads[1] is threads[2]


def test_a_thread_that_cannot_start_leaves_nothing_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    store: BackgroundStore[int] = BackgroundStore("test")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start"):
        store.start(lambda: 1)
    assert not store.busy
    assert store.wait(0) is None  # returns at once: nothing to wait for


def test_settled_waits_without_taking_the_outcome() -> None:
    store: BackgroundStore[int] = BackgroundStore("test")
    assert store.settled(0)  # nothing in flight
    release = threading.Event()
    store.start(lambda: 5 if release.wait(10) else -1)
    assert not store.settled(0.01)
    release.set()
    assert store.settled(10)
    assert store.busy  # the outcome is still there to take
    assert store.wait(0) == Finished(5)
