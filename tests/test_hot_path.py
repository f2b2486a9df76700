"""The hot-path shortcuts (benchmarks/event_cost.py) change the cost, never the outcome."""

from __future__ import annotations

import ast
import copy
import pickle
import random
from dataclasses import FrozenInstanceError, fields, replace
from types import MappingProxyType, SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkstate import (
    LIFECYCLE,
    Decision,
    Definition,
    Edge,
    LifecycleError,
    LinkMachine,
    State,
    Trigger,
    Verdict,
    _events,
    normalise,
)
from linkstate._channel import Channel, available_channels, load_channel
from linkstate._events import (
    _MAX_EVENTS,
    _MAX_PLANS,
    _UNREADABLE,
    CloseEvent,
    Phase,
    _read_fast,
    _read_general,
    sanitise_reason,
)
from linkstate._lifecycle import CLOSE_TRIGGERS, DECISIONS
from linkstate._machine import Link, TransitionRecord, _Firing, route_table
from linkstate._reading import lookup_all
from linkstate.channels.whatsapp import CHANNEL as WHATSAPP
from linkstate.testing import hostile

BUNDLED_NAMES = ("discord", "matrix", "slack", "telegram", "websocket", "whatsapp")

LIVE_CLOSES = [
    (state, trigger)
    for state in LIFECYCLE.states
    if state not in LIFECYCLE.terminal
    for trigger in CLOSE_TRIGGERS
    if trigger in LIFECYCLE.triggers_from(state)
]


def through_transitions(
    machine: LinkMachine, state: State, trigger: Trigger, edge: Edge
) -> str | None:
    """Fire the routed ``edge`` through transitions' own public ``Event.trigger``.

    transitions tries every edge of the state and trigger in turn; the identity
    conditions must let exactly the routed one pass, wherever it is in the order.
    """
    link = Link("hot", state)
    firing = _Firing(0.0, None, None, None, edge)
    assert machine.machine.events[trigger.value].trigger(link, ctx=firing)
    return link.state


def test_the_route_table_is_what_the_definition_resolves_for_every_case() -> None:
    table = route_table(LIFECYCLE)
    cases = 0
    for state in LIFECYCLE.states:
        for trigger in LIFECYCLE.triggers_from(state):
            carries = LIFECYCLE.carries_decision(state, trigger)
            for decision in DECISIONS if carries else (None,):
                assert table[state.value, trigger, decision] is LIFECYCLE.resolve(
                    state, trigger, decision
                )
                cases += 1
    assert len(table) == cases


@pytest.mark.parametrize(("state", "trigger"), LIVE_CLOSES)
def test_every_edge_fired_through_transitions_lands_where_it_leads(
    state: State, trigger: Trigger
) -> None:
    machine = LinkMachine(WHATSAPP)
    for edge in LIFECYCLE.edges_from(state, trigger):
        assert edge.dest is not None
        assert through_transitions(machine, state, trigger, edge) == edge.dest.value


def test_no_condition_passes_for_an_edge_the_table_did_not_route() -> None:
    machine = LinkMachine(WHATSAPP)
    stray = Edge(State.open, Trigger.closed, State.failed, always)
    link = Link("hot", State.open)
    firing = _Firing(0.0, None, None, None, stray)
    assert not machine.machine.events[Trigger.closed.value].trigger(link, ctx=firing)
    assert link.state == State.open.value


def always(decision: Decision) -> bool:
    return True


def overlapping() -> Definition:
    """A definition whose first close route passes for every decision: order is priority."""
    first = Edge(State.open, Trigger.closed, State.failed, always)
    return replace(LIFECYCLE, edges=(first, *LIFECYCLE.edges))


def test_overlapping_guards_keep_the_declared_order_and_its_priority() -> None:
    definition = overlapping()
    machine = LinkMachine(WHATSAPP, definition=definition)
    link = machine.new_link("first")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 0.0)
    record = machine.close(link, 428, 1.0)
    assert (record.dst, link.state) == ("failed", "failed")
    assert route_table(definition)["open", Trigger.closed, Decision(Verdict.retry)].guard is always


def test_a_guard_that_raises_is_refused_when_the_machine_is_built() -> None:
    def broken(decision: Decision) -> bool:
        raise ZeroDivisionError

    edge = Edge(State.open, Trigger.closed, State.failed, broken)
    definition = replace(LIFECYCLE, edges=(edge, *LIFECYCLE.edges))
    with pytest.raises(LifecycleError, match=r"ZeroDivisionError.*'closed'.*'open'"):
        LinkMachine(WHATSAPP, definition=definition)


def test_decisions_are_the_shared_values() -> None:
    machine = LinkMachine(WHATSAPP, rng=random.Random(1))
    event = normalise(428)
    rule = WHATSAPP.table.classify(event)
    for now in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        link = Link("shared", State.open)
        decision = machine._decide(link, Trigger.closed, event, rule, now)
        assert any(decision is shared for shared in DECISIONS)


BAILEYS = {
    "connection": "close",
    "lastDisconnect": {
        "error": {
            "message": "Stream Errored (conflict)",
            "output": {"statusCode": 440, "payload": {"statusCode": 440}},
            "data": {"tag": "conflict", "attrs": {"type": "replaced"}},
        },
        "retry_after": 3,
    },
}


def frozen(value: object) -> object:
    """The same data in a Mapping that is not a dict: the general path."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    return value


# Keys the normaliser looks for, and one it does not.
KEYS: tuple[str, ...] = ("status", "statusCode", "code", "error", "output", "payload")
KEYS += ("message", "reason", "lastDisconnect", "retry_after", "retryAfter", "parameters", "x")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.dictionaries(
        st.sampled_from(KEYS),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)


def test_a_plain_dict_reads_like_any_other_mapping() -> None:
    assert normalise(BAILEYS) == normalise(frozen(BAILEYS))
    assert normalise(BAILEYS).status == 440


@given(json_values)
def test_the_dict_fast_path_agrees_with_the_mapping_path(value: object) -> None:
    assert normalise(value) == normalise(frozen(value))


def general(raw: object) -> CloseEvent:
    """The reading the tables define, as normalise would give it: unreadable when it raises."""
    try:
        return _read_general(raw)
    except Exception:
        return _UNREADABLE


def fast(raw: object) -> CloseEvent:
    """The fast reader, with the fallback normalise gives it."""
    try:
        return _read_fast(raw)
    except Exception:
        return general(raw)


def as_object(value: object) -> object:
    """The same data as attributes of plain objects: the reading of exceptions."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: as_object(v) for k, v in value.items()})
    return value


# Every key the tables name (and one they do not), in dicts, lists, objects and
# hostile objects: whatever the nesting, the fast reader gives the general one's event.
ALL_KEYS = (*_events._KEYS, "x", "data", "tag")
# The wrapper keys again, and often: the deep layers must be reached too.
WRAPPED_KEYS = st.sampled_from(("error", "lastDisconnect") * 4 + ALL_KEYS)
leaves = st.one_of(
    st.integers(1, 9_999),  # a status, mostly: several paths then compete for the field
    st.sampled_from(["428", " 4e2 ", "too_many_websockets", "M_UNKNOWN_TOKEN", "1.5", "x"]),
    st.sampled_from(["handshake", "remote", "local"]),
    st.lists(st.sampled_from(["soft_logout", "resumable", "1x"]), max_size=2),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=4),
)
nested = st.recursive(
    leaves,
    lambda inner: (
        st.dictionaries(st.sampled_from(ALL_KEYS), inner, max_size=5)
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(ALL_KEYS), inner, max_size=4).map(as_object)
    ),
    max_leaves=24,
)
# Layers of the tables' keys only, so that several paths compete for each field,
# wrapped in one another (as dicts or objects) down to the depth bound and past it.
table_layer = st.dictionaries(st.sampled_from(_events._KEYS), leaves, min_size=1, max_size=6)


def wrap(outer: dict[str, object], wrapped: dict[str, object]) -> dict[str, object]:
    return {**outer, **wrapped}


layered = st.recursive(
    table_layer,
    lambda inner: st.builds(
        wrap,
        table_layer,
        st.dictionaries(
            st.sampled_from(["error", "lastDisconnect"]),
            inner | inner.map(as_object),
            min_size=1,
        ),
    ),
    max_leaves=10,
)
with_hostile = st.recursive(
    leaves | hostile(),
    lambda inner: st.dictionaries(WRAPPED_KEYS, inner, max_size=4),
    max_leaves=6,
)
FAST_VS_GENERAL = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@FAST_VS_GENERAL
@given(nested | layered)
def test_the_fast_reader_gives_what_the_tables_define(value: object) -> None:
    # No fallback here: on data like this the fast reader itself must answer.
    # Three times: the first reading plans the top layer, the second compiles
    # its tree, the third is the tree's.
    for _ in range(3):
        assert _read_fast(value) == general(value)
    if type(value) is dict:
        assert normalise(value) == general(value)


@FAST_VS_GENERAL
@given(with_hostile)
def test_the_fast_reader_agrees_on_hostile_objects_too(value: object) -> None:
    for _ in range(3):  # planned, then compiled into a tree, then read by it
        assert fast(value) == general(value)


def reshaped(data: st.DataObject, value: object) -> object:
    """A fresh copy of ``value`` with the same top keys, some values (or whole layers) redrawn."""
    if type(value) is dict:
        return {
            key: reshaped(data, inner) if data.draw(st.booleans()) else data.draw(redrawn)
            for key, inner in value.items()
        }
    return copy.deepcopy(value) if data.draw(st.booleans()) else data.draw(leaves)


redrawn = nested | layered | with_hostile
top_dicts = layered | st.dictionaries(WRAPPED_KEYS, nested | layered, min_size=1, max_size=5)


@FAST_VS_GENERAL
@given(top_dicts, st.data())
def test_a_tree_reads_every_close_of_its_top_keys_as_the_tables_define(
    value: dict[str, object], data: st.DataObject
) -> None:
    # A tree is compiled from one close and then meets others with the same
    # top keys: fresh equal copies, other leaves, other nestings, hostile layers.
    _events._PLANS.clear()
    for _ in range(2):
        assert fast(value) == general(value)
    assert _events._PLANS[frozenset(value)].tree is not None
    fresh = copy.deepcopy(value)
    assert fast(fresh) == general(fresh) == general(value)
    other = reshaped(data, value)
    assert fast(other) == general(other)


def test_a_tree_answers_a_fresh_baileys_close() -> None:
    close = {
        "connection": "close",
        "lastDisconnect": {
            "error": {"message": "Connection Closed", "output": {"statusCode": 428}},
            "date": "2024-05-01T00:00:00Z",
        },
    }
    normalise(close)
    normalise(close)
    tree = _events._PLANS[frozenset(close)].tree
    assert tree is not None and tree is not _events._no_tree
    # A fresh equal close, as every real one is: the tree reads it, not an id.
    expected = CloseEvent(428, reason="Connection Closed")
    assert tree(copy.deepcopy(close)) == general(close) == expected
    # The same top keys nesting otherwise: the tree declines, the reading is still right.
    moved = {"connection": "close", "lastDisconnect": {"error": "boom", "date": "d"}}
    assert tree(moved) is None
    assert normalise(moved) == general(moved) == CloseEvent(reason="boom")


def test_a_tree_compiled_from_a_layer_wrapped_twice_reads_two_layers_as_two() -> None:
    shared = {"status": 4004}
    once = {"error": shared, "lastDisconnect": shared}
    for _ in range(2):
        assert normalise(once) == general(once) == CloseEvent(4004)
    # The same keys, two layers now: the second one's code must be read too.
    twice = {"error": {"status": 4004}, "lastDisconnect": {"status": 4004, "code": "c1"}}
    assert normalise(twice) == general(twice) == CloseEvent(4004, code="c1")


def test_a_tree_missed_again_and_again_is_compiled_again() -> None:
    first = {"error": {"status": 4004}}
    normalise(first)
    normalise(first)
    plan = _events._PLANS[frozenset(first)]
    old = plan.tree
    assert old is not None and old({"error": {"status": 4005}}) is not None
    then = {"error": {"status": 4004, "reason": "now with a reason"}}
    for _ in range(_events._MAX_MISSES):
        assert normalise(then) == general(then)
    assert plan.tree is None  # dropped after the misses; the next close compiles again
    assert normalise(then) == general(then)
    assert plan.tree is not None and plan.tree is not old and plan.tree(then) is not None


def test_an_object_or_a_large_dict_wrapped_gets_no_tree() -> None:
    for close in (
        {"error": SimpleNamespace(status=4004)},
        {"error": {f"k{i}": i for i in range(100)} | {"status": 4004}},
        {"error": {1: "a non-str key", "status": 4004}},
    ):
        _events._PLANS.clear()
        for _ in range(3):
            assert normalise(close) == general(close)
        assert _events._PLANS[frozenset(close)].tree is _events._no_tree


def _texts(source: str) -> set[str]:
    """Every string constant in generated ``source``."""
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_a_tree_holds_no_key_a_client_sent() -> None:
    sneaky = "'); import os; os._exit(1) #"
    close = {"error": {sneaky: 1, "status": 428, "output": {sneaky: 2}}, sneaky: 3}
    made = _events._tree_source(close)
    assert made is not None
    source, _ = made
    # The only text in a tree is our tables' keys: what a client sent is passed as a value.
    texts = _texts(source)
    tables = (*_events.STATUS_PATHS, *_events.REASON_PATHS, *_events.CODE_PATHS, *_events.WRAPPERS)
    ours = {key for path in tables for key in path}
    ours |= {key for path, _ in _events.RETRY_AFTER_PATHS for key in path}
    assert texts <= ours | set(_events._TOP_KEYS) | {""}
    assert "status" in texts and sneaky not in source
    for _ in range(3):
        assert normalise(close) == general(close) == CloseEvent(428)


def test_a_cycle_and_an_error_wrapped_twice_are_read_once_and_alike() -> None:
    loop: dict[str, object] = {"reason": "loop"}
    loop["error"] = loop
    loop["lastDisconnect"] = {"error": loop, "status": 428}
    for _ in range(3):  # planned, then compiled into a tree, then read by it
        assert fast(loop) == general(loop) == CloseEvent(status=428, reason="loop")


def test_a_large_dict_layer_reads_like_a_small_one() -> None:
    wide = {f"k{i}": i for i in range(1_000)} | {"error": {"status": 4004}, "reason": "wide"}
    assert fast(wide) == general(wide) == CloseEvent(status=4004, reason="wide")


def test_the_plan_and_event_caches_stay_bounded() -> None:
    for i in range(3 * _MAX_PLANS):
        normalise({f"key{i}": 1, "status": 428})
    for i in range(3 * _MAX_EVENTS):
        normalise({"status": 428, "reason": f"reason {i}"})
    assert 0 < len(_events._PLANS) <= _MAX_PLANS
    assert 0 < len(_events._EVENTS) <= _MAX_EVENTS


def test_no_hostile_or_huge_key_and_no_long_reason_is_kept() -> None:
    class Key(str):
        __hash__ = str.__hash__

    normalise({Key("status"): 428, "k" * 1_000: 1})
    normalise({"status": 428, "reason": "r" * 10_000})
    assert all(type(key) is str and len(key) <= 64 for keys in _events._PLANS for key in keys)
    assert all(len(str(reading[2])) <= 200 for reading in _events._EVENTS)


def test_equal_readings_share_one_event() -> None:
    first = normalise({"status": 1008, "reason": "policy violation"})
    assert normalise({"reason": "policy violation", "status": 1008}) is first


def test_a_negative_zero_hint_reads_as_zero() -> None:
    event = normalise({"status": 429, "retry_after": -0.0})
    assert event.retry_after == 0.0 and str(event.retry_after) == "0.0"


@given(st.text(max_size=50))
def test_the_printable_fast_path_agrees_with_the_per_character_path(text: str) -> None:
    # Replacing the unprintable characters first sends the text down the fast path.
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    assert sanitise_reason(text) == sanitise_reason(printable)


def test_records_carry_every_field_in_its_place() -> None:
    machine = LinkMachine(WHATSAPP, rng=random.Random(3))
    link = machine.new_link("fields")
    machine.fire(link, Trigger.start, 0.0)
    machine.fire(link, Trigger.opened, 1.0)
    retry = machine.close(link, {"status": 428, "reason": "gone", "code": "c1"}, 2.0)
    assert retry == TransitionRecord(
        t=2.0,
        link="fields",
        src="open",
        dst="reconnecting",
        trigger="closed",
        status=428,
        code="c1",
        rule="428 connectionClosed",
        verdict="retry",
        attempt=1,
        delay=link.delay,
        stop_reason=None,
        message=None,
        reason="gone",
    )
    assert retry.delay is not None
    machine.fire(link, Trigger.backoff_elapsed, 3.0)
    machine.fire(link, Trigger.opened, 4.0)
    stop = machine.close(link, 440, 5.0)
    assert stop == TransitionRecord(
        t=5.0,
        link="fields",
        src="open",
        dst="needs_relink",
        trigger="closed",
        status=440,
        code=None,
        rule="440 connectionReplaced",
        verdict="relink",
        attempt=1,
        delay=None,
        stop_reason="relink",
        message=link.message,
        reason="",
    )
    assert stop.message is not None and "440" in stop.message


def test_a_record_built_on_the_hot_path_is_a_whole_frozen_dataclass() -> None:
    machine = LinkMachine(WHATSAPP, rng=random.Random(4))
    link = machine.new_link("whole")
    records = [
        machine.fire(link, Trigger.start, 0.0),
        machine.fire(link, Trigger.opened, 1.0),
        machine.close(link, 440, 2.0),
    ]
    for record in records:
        # Every slot is set: a missing one would raise AttributeError here.
        built = TransitionRecord(**{f.name: getattr(record, f.name) for f in fields(record)})
        assert record == built and hash(record) == hash(built) and repr(record) == repr(built)
        assert pickle.loads(pickle.dumps(record)) == record
        assert replace(record, attempt=99).attempt == 99 and record.attempt != 99
        with pytest.raises(FrozenInstanceError):
            record.attempt = 7  # type: ignore[misc]


BUNDLED = [load_channel(name) for name in available_channels() if name in BUNDLED_NAMES]


@pytest.mark.parametrize("channel", BUNDLED, ids=lambda channel: channel.name)
def test_every_bundled_channel_reads_a_plain_int_as_its_extractor_does(channel: Channel) -> None:
    # generic_ints is a promise: where the fast path answers, it gives what the
    # extractor and the table give; where it does not, classify is unchanged.
    for status in (-1, 0, 428, 440, 1000, 4440, 10**30):
        event = channel.extract(status)
        expected = (event, channel.table.classify(event))
        assert channel.classify(status) == expected
        assert channel.classify(status) == expected
    assert (channel._by_int is not None) == channel.generic_ints


@given(st.integers())
def test_the_plain_int_fast_path_agrees_with_the_extractor(status: int) -> None:
    event = WHATSAPP.extract(status)
    expected = (event, WHATSAPP.table.classify(event))
    assert WHATSAPP.classify(status) == expected
    assert WHATSAPP.classify(status) == expected  # the second answer comes from the cache


class HostileInt(int):
    """An int subclass whose comparisons raise: it must not take the int fast path."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile")

    def __hash__(self) -> int:
        raise RuntimeError("hostile")


def test_an_int_subclass_goes_the_safe_way_not_the_fast_path() -> None:
    event, rule = WHATSAPP.classify(HostileInt(440))
    assert type(event.status) is int or event.status is None
    assert WHATSAPP._by_int is not None
    assert all(type(key) is int for key in WHATSAPP._by_int)
    assert rule is WHATSAPP.table.classify(event)


def test_a_cached_int_still_honours_a_phase_override() -> None:
    WHATSAPP.classify(440)
    event, _ = WHATSAPP.classify(440, phase=Phase.handshake)
    assert event.phase is Phase.handshake


# -- objects of many classes: the per-type attribute plans (issue 19 item 2) ---------------------
#
# An object's layer is read by _events._object_keys, a LookupAll: a type's
# plan says which of our keys its classes name, so only those and the
# instance dict's are read. Each class below puts a key where a plan must
# find it (or must refuse to plan), and each test reads it twice: the first
# reading makes the plan, the second uses it.


class Plain:
    """Instance attributes only."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


class WithProperty(Plain):
    """A key answered by a property, not the instance dict."""

    @property
    def status(self) -> int:
        return 4004


class WithSlots:
    """Keys held in slots, some left unset."""

    __slots__ = ("code", "reason", "status")

    def __init__(self, **values: object) -> None:
        for key, value in values.items():
            setattr(self, key, value)


class WithClassAttributes(Plain):
    """Keys as class attributes, one of them None."""

    reason = "from the class"
    code = None


class Inherited(WithClassAttributes, WithProperty):
    """Keys inherited from two bases."""


class WithGetattr(Plain):
    """Any missing key answered: no plan may skip a key."""

    def __getattr__(self, key: str) -> object:
        return 4005 if key == "statusCode" else None


class WithGetattribute(Plain):
    """Every read through a hook of its own."""

    def __getattribute__(self, key: str) -> object:
        return 4006 if key == "code" else object.__getattribute__(self, key)


class Keyed(Plain, dict):  # type: ignore[type-arg]
    """A Mapping: read by key, never by attribute."""


class RaisingProperty(Plain):
    """A property whose reading raises: absent, as lookup says."""

    @property
    def reason(self) -> str:
        raise RuntimeError("hostile")


class ClassProperty(Plain):
    """A ``__class__`` that lies, when told to: isinstance (hence lookup) believes it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return dict if self.__dict__.get("pretend", True) else Plain


class DictProperty(Plain):
    """A ``__dict__`` that is a property: reading it would run user code."""

    reads = 0

    @property
    def __dict__(self) -> dict[str, object]:  # type: ignore[override]
        DictProperty.reads += 1
        return {"status": 4007}


class Failing(Exception):
    """An exception with a class attribute and instance attributes."""

    code = "class_code"


class Raised(Exception):
    """An exception holding whatever it is given, as instance attributes: normalise's own path."""

    def __init__(self, **values: object) -> None:
        super().__init__("raised text")
        self.__dict__.update(values)


class RaisedWithSlotsAndClassKeys(Raised):
    """Keys in the class, in a property and in slots beside the instance dict."""

    __slots__ = ("code", "retry_after")
    description = "from the class"

    @property
    def statusCode(self) -> int:
        return 4009

    def __init__(self, **values: object) -> None:
        slotted = {key: values.pop(key) for key in self.__slots__ if key in values}
        super().__init__(**values)
        for key, value in slotted.items():
            setattr(self, key, value)


class ClaimsBytes(Exception):
    """An exception whose ``__class__`` says bytes: isinstance, hence normalise, believes it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return bytes


CLASSES: tuple[type, ...] = (Plain, WithProperty, WithSlots, WithClassAttributes, Inherited)
CLASSES += (WithGetattr, WithGetattribute, Keyed, RaisingProperty, ClassProperty, DictProperty)
CLASSES += (Raised, RaisedWithSlotsAndClassKeys)


def build(cls: type, values: dict[str, object]) -> object:
    if cls is Keyed:
        made = Keyed(**values)
        made.update(values)
        return made
    if cls is WithSlots:
        return WithSlots(**{k: v for k, v in values.items() if k in WithSlots.__slots__})
    return cls(**values)


def agrees(value: object) -> None:
    """The fast reader gives the general reading, and the plan what lookup_all gives, twice."""
    for _ in range(2):
        assert _events._object_keys(value) == lookup_all(value, _events._KEYS)
        assert fast(value) == general(value)
        assert normalise(value) == general(value)


objects = st.builds(
    build,
    st.sampled_from(CLASSES),
    st.dictionaries(st.sampled_from(ALL_KEYS), nested | layered, max_size=5),
)


@FAST_VS_GENERAL
@given(objects)
def test_objects_of_every_kind_of_class_read_as_the_tables_define(value: object) -> None:
    agrees(value)


@FAST_VS_GENERAL
@given(
    st.dictionaries(WRAPPED_KEYS, objects | nested, min_size=1, max_size=4).map(
        lambda values: Plain(**values)
    )
)
def test_objects_wrapping_objects_read_as_the_tables_define(value: object) -> None:
    agrees(value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_class_reads_its_keys_wherever_they_sit(cls: type) -> None:
    value = build(cls, {"statusCode": 428, "reason": "instance", "error": Plain(code="c1")})
    agrees(value)


def test_a_hook_or_a_mapping_gets_no_plan_and_is_read_in_full() -> None:
    keyed = Keyed(reason="attribute")
    keyed["statusCode"] = 428
    for value, status in (
        (WithGetattr(reason="r"), 4005),  # only its __getattr__ holds a status
        (WithGetattribute(status=428), 428),
        (keyed, 428),  # by key: its attribute reason is not read
    ):
        assert _events._object_keys.names(value) is None
        assert normalise(value).status == status
        agrees(value)
    assert normalise(keyed).reason == ""
    assert _events._object_keys(WithGetattribute()) == {"code": 4006}


def test_a_lying_class_or_dict_property_gets_no_plan() -> None:
    # One instance tells the truth, the next lies: no plan made from the first
    # may read the second, which lookup reads as a Mapping.
    for pretend in (False, True, False):
        lying = ClassProperty(status=428, pretend=pretend)
        assert _events._object_keys.names(lying) is None
        agrees(lying)
    hidden = DictProperty()
    before = DictProperty.reads
    assert _events._object_keys.names(hidden) is None
    assert DictProperty.reads == before  # the plan never ran the property to find out
    agrees(hidden)


def test_a_raising_property_reads_as_absent() -> None:
    value = RaisingProperty(status=428)
    assert _events._object_keys(value) == {"status": 428} == lookup_all(value, _events._KEYS)
    assert normalise(value) == general(value) == CloseEvent(428)


def test_a_key_added_to_a_class_after_its_plan_is_read() -> None:
    class Late(Plain):
        pass

    class LateChild(Late):
        pass

    value = LateChild(reason="r")
    agrees(value)
    assert normalise(value).status is None
    Late.statusCode = property(lambda self: 4010)  # type: ignore[attr-defined]
    agrees(value)
    assert normalise(value).status == 4010
    LateChild.code = "late_code"  # type: ignore[attr-defined]
    agrees(value)
    assert normalise(value).code == "late_code"
    del Late.statusCode  # type: ignore[attr-defined]
    agrees(value)
    assert normalise(value) == CloseEvent(reason="r", code="late_code")


def test_a_hook_added_to_a_class_after_its_plan_is_honoured() -> None:
    class Hooked(Plain):
        pass

    value = Hooked(reason="r")
    agrees(value)
    Hooked.__getattr__ = lambda self, key: 4011 if key == "status" else None  # type: ignore[attr-defined]
    agrees(value)
    assert normalise(value).status == 4011


def test_a_generic_getattribute_named_by_a_class_gets_no_plan() -> None:
    # The name is in the class dict from the start, so assigning another hook
    # later changes a value, not the keys a plan's checks compare: no plan.
    class Named(Plain):
        __getattribute__ = object.__getattribute__

    value = Named(reason="r")
    agrees(value)
    assert _events._object_keys.names(value) is None

    def hooked(self: object, key: str) -> object:
        return 4014 if key == "status" else object.__getattribute__(self, key)

    Named.__getattribute__ = hooked  # type: ignore[method-assign,assignment]
    agrees(value)
    assert normalise(value).status == 4014


def test_an_instance_dict_whose_keys_lie_is_read_by_its_contents() -> None:
    class LyingDict(dict):  # type: ignore[type-arg]
        def keys(self) -> frozenset[str]:  # type: ignore[override]
            return frozenset({"reason"})

    class Held(Plain):
        pass

    for _ in range(2):
        agrees(Held(reason="r"))  # the plan, and the instance keys it keeps: {reason}
    value = Held()
    value.__dict__ = LyingDict(reason="r", status=428)
    agrees(value)
    assert normalise(value) == CloseEvent(428, reason="r")


class ShiftingKey:
    """A key hashed as ``status`` when stored, then as something else: getattr still finds it."""

    def __init__(self) -> None:
        self.hashes = 0

    def __hash__(self) -> int:
        self.hashes += 1
        return hash("status") if self.hashes == 1 else hash("not one of ours")

    def __eq__(self, other: object) -> bool:
        return other == "status"


def test_an_instance_key_whose_hash_shifts_is_found_as_getattr_finds_it() -> None:
    class Shifty(Plain):
        pass

    agrees(Shifty(code="c"))  # the plan, and the instance keys it keeps: {code}
    value = Shifty()
    value.__dict__[ShiftingKey()] = 428  # type: ignore[index]
    value.__dict__["code"] = "c"
    assert value.status == 428  # type: ignore[attr-defined]  # the dict's lookup uses the hash it stored
    agrees(value)
    assert normalise(value) == CloseEvent(428, code="c")


def test_bases_assigned_after_the_plan_are_honoured() -> None:
    class Before(Plain):
        pass

    class After(Plain):
        status = 4012

    class Changing(Before):
        pass

    value = Changing()
    agrees(value)
    Changing.__bases__ = (After,)
    agrees(value)
    assert normalise(value).status == 4012


def test_a_class_registered_as_a_mapping_after_its_plan_is_read_by_key() -> None:
    from collections.abc import Mapping

    class Registered(Plain):
        def get(self, key: str) -> object:
            return 4013 if key == "status" else None

    value = Registered(status=428)
    agrees(value)
    assert normalise(value).status == 428
    Mapping.register(Registered)
    agrees(value)
    assert normalise(value).status == 4013


def test_instances_of_one_class_holding_other_keys_read_their_own() -> None:
    for value in (Plain(status=428), Plain(reason="r"), Plain(status=1000, code="c"), Plain()):
        agrees(value)
    value = Plain(status=428)
    agrees(value)
    value.code = "added"  # type: ignore[attr-defined]
    agrees(value)
    assert normalise(value) == CloseEvent(428, code="added")


def test_an_exception_reads_its_class_and_instance_attributes() -> None:
    error = Failing("boom")
    error.status = 428  # type: ignore[attr-defined]
    agrees(error)
    assert normalise(error) == CloseEvent(428, code="class_code", reason="boom")


def test_the_type_plans_stay_bounded() -> None:
    for i in range(3 * _events._MAX_PLANS):
        agrees(type(f"Made{i}", (Plain,), {})(status=428))
    from linkstate._reading import _MAX_TYPES

    assert 0 < len(_events._object_keys._plans) <= _MAX_TYPES


def library_exceptions() -> list[object]:
    import telegram.error
    from discord.errors import ConnectionClosed
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import SlackResponse

    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/apps.connections.open",
        req_args={},
        data={"ok": False, "error": "invalid_auth"},
        headers={"Retry-After": "3"},
        status_code=429,
    )
    slack = SlackApiError("The request to the Slack API failed.", response)  # type: ignore[no-untyped-call]
    return [
        ConnectionClosed(None, shard_id=0, code=4004),  # type: ignore[arg-type]
        ConnectionClosed(None, shard_id=None, code=1000),  # type: ignore[arg-type]
        slack,
        telegram.error.Conflict("Conflict: terminated by other getUpdates request"),
        telegram.error.RetryAfter(3),
        telegram.error.NetworkError("down"),
    ]


@pytest.mark.parametrize("error", library_exceptions(), ids=lambda error: type(error).__name__)
def test_the_client_libraries_exceptions_read_as_the_tables_define(error: object) -> None:
    agrees(error)
    names = _events._object_keys.names(error)
    assert names is not None  # planned: the fast way
    reader = _events._PLANS[names].attrs  # and read by the reader compiled for its names
    assert reader is not None and reader is not _events._no_attrs
    assert reader(error) == normalise(error) == general(error)


# -- attribute readers: an object's planned names, compiled ---------------------------------------


def test_an_attribute_reader_holds_no_key_but_ours() -> None:
    for keys in ({"code", "reason"}, set(_events._KEYS) - {"error", "lastDisconnect"}):
        names = frozenset(keys)
        made = _events._attrs_source(names, _events._plan(names))
        assert made is not None
        source, _ = made
        texts = _texts(source)
        tables = (*_events.STATUS_PATHS, *_events.REASON_PATHS, *_events.CODE_PATHS)
        ours = {key for path in tables for key in path}
        ours |= {key for path, _ in _events.RETRY_AFTER_PATHS for key in path}
        assert texts <= ours | set(_events._TOP_KEYS) | {""}
        assert {"code", "reason"} <= texts
    # Only our keys are ever compiled: a set holding another gets no reader.
    odd = frozenset({"code", "'); import os #"})
    assert _events._attrs_source(odd, _events._Plan(odd)) is None


def test_an_object_wrapping_a_layer_gets_no_attribute_reader() -> None:
    # The wrapped layer's status must be read: a reader of the top layer alone would miss it.
    close = Raised(error={"status": 4004, "reason": "inner"}, code="outer_code")
    for _ in range(3):
        assert normalise(close) == general(close) == CloseEvent(4004, "outer_code", "inner")
    names = _events._object_keys.names(close)
    assert names is not None and _events._PLANS[names].attrs is _events._no_attrs


def test_an_exception_without_a_reason_reads_its_text_through_its_reader() -> None:
    error = Raised(status=4004)
    for _ in range(3):
        assert normalise(error) == general(error) == CloseEvent(4004, reason="raised text")
    assert normalise(Raised(status=4004, reason="")) == CloseEvent(4004)  # "" is a reason


def test_an_attribute_reader_reads_a_close_s_own_initiator_phase_and_flags() -> None:
    from linkstate._events import Initiator

    error = Raised(status=4004, initiator="remote", phase="handshake", flags=["soft_logout"])
    expected = CloseEvent(
        4004,
        reason="raised text",
        initiator=Initiator.remote,
        phase=Phase.handshake,
        flags=frozenset({"soft_logout"}),
    )
    for _ in range(3):
        assert normalise(error) == general(error) == expected
    names = _events._object_keys.names(error)
    assert names is not None and _events._PLANS[names].attrs not in (None, _events._no_attrs)


def test_an_exception_whose_class_lies_is_not_read_by_its_attributes() -> None:
    # Its type has no plan, so normalise asks what it claims to be, as it
    # always did: bytes, which it is not, so it cannot be read (and a shortcut
    # taken for every exception would read its text and attributes instead).
    lying = ClaimsBytes("text")
    lying.status = 428  # type: ignore[attr-defined]
    for _ in range(3):
        assert _events._object_keys.names(lying) is None
        assert normalise(lying) == _UNREADABLE


def test_a_tree_reads_a_field_of_an_outer_layer_before_an_inner_one() -> None:
    # Each layer's first step tests its field too: only the top layer may skip that test.
    close = {"status": 4001, "error": {"status": 4002, "code": "inner_code"}}
    for _ in range(3):
        assert normalise(close) == general(close) == CloseEvent(4001, "inner_code")
