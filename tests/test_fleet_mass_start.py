"""A fleet holds the collector off while a mass start is under way, then freezes the survivors."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.runtime._fleet import Fleet, open_fleet
from linkstate.runtime._heap import MASS_START_HOLD, MASS_START_LINKS
from linkstate.runtime._scripted import Close, Hang, ScriptedTransport, Step


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    assert gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable()


def start(fleet: Fleet, count: int, step: Step) -> None:
    for i in range(count):
        fleet.start(f"l{i:05}", WHATSAPP, ScriptedTransport([step]), connect_timeout=None)


async def test_a_mass_start_holds_the_collector_until_every_link_is_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    frozen = gc.get_freeze_count()
    async with open_fleet() as fleet:
        start(fleet, MASS_START_LINKS, Close(428, after=1000.0))
        # Off from the start that reached the threshold, before any link ran.
        assert not gc.isenabled()
        await trio.sleep(1.0)
        assert {s.state for s in fleet.statuses()} == {"open"}
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen, "the survivors were frozen"
        fleet.stop_all()


async def test_the_hold_ends_in_a_freeze_without_a_collection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One collection at the end would walk every object the start made: as
    # long as the start itself with 100k links (linkstate.runtime._heap).
    held: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not gc.isenabled():
            held.append(info["generation"])

    frozen = gc.get_freeze_count()
    gc.callbacks.append(watch)
    try:
        async with open_fleet() as fleet:
            start(fleet, MASS_START_LINKS, Close(428, after=1000.0))
            assert not gc.isenabled()
            await trio.sleep(1.0)
            assert gc.isenabled()
            assert gc.get_freeze_count() > frozen + MASS_START_LINKS, "the links were frozen"
            assert held == [], "the collector ran while the fleet held it"
            fleet.stop_all()
    finally:
        gc.callbacks.remove(watch)


async def test_a_small_start_leaves_the_collector_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fleet() as fleet:
        start(fleet, 10, Close(428, after=1000.0))
        assert gc.isenabled()
        await trio.sleep(1.0)
        assert gc.isenabled() and gc.get_freeze_count() == 0
        fleet.stop_all()


async def test_links_that_never_come_up_hold_it_for_a_bounded_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fleet() as fleet:
        start(fleet, MASS_START_LINKS, Hang())
        await trio.sleep(MASS_START_HOLD - 1.0)
        assert not gc.isenabled()
        await trio.sleep(2.0)
        assert {s.state for s in fleet.statuses()} == {"connecting"}
        assert gc.isenabled()
        fleet.stop_all()
