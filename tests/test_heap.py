"""linkstate.runtime: the collector waits out a mass start, then survivors are frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from linkstate.runtime._heap import freeze_survivors, hold_collector, mass_start


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:  # pragma: no cover - pytest runs with the collector on
        gc.disable()


class Node:
    def __init__(self) -> None:
        self.me = self


def test_freeze_survivors_frees_cycles_first_then_freezes_what_lives() -> None:
    gc.unfreeze()
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage  # a reference cycle: only the collector frees it
    keep = Node()
    frozen = freeze_survivors()
    assert gone() is None
    assert frozen == gc.get_freeze_count() > 0
    # Frozen objects are in no generation the collector walks any more.
    assert not any(obj is keep for obj in gc.get_objects())


def test_mass_start_holds_the_collector_off_then_freezes_and_restores_it() -> None:
    gc.enable()
    gc.unfreeze()
    with mass_start():
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
        survivors = [Node() for _ in range(100)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(survivors)


def test_mass_start_restores_the_collector_when_the_block_raises() -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"), mass_start():
        raise ValueError("boom")
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_mass_start_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    with mass_start():
        pass
    assert not gc.isenabled()


def test_holds_nest_and_the_last_one_restores_the_collector() -> None:
    gc.enable()
    with hold_collector():
        with mass_start():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the outer hold is still under way"
    assert gc.isenabled()


def test_a_hold_without_collecting_freezes_garbage_too() -> None:
    # What a fleet's hold does: no collection's pause at the end; the price is
    # that a cycle made during the hold stays until gc.unfreeze().
    gc.enable()
    gc.unfreeze()
    with hold_collector(collect=False):
        garbage = Node()
        gone = weakref.ref(garbage)
        del garbage
    assert gc.isenabled()
    assert gone() is not None, "frozen, not collected"
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.collect()
    assert gone() is None
