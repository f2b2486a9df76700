"""linkstate.plugin: the one reader of keys and attributes, for normalise and every channel."""

from __future__ import annotations

import warnings
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkstate import CloseEvent, normalise
from linkstate._reading import lookup
from linkstate.plugin import Facts, extract_with, facts, get, is_a


class Deprecated:
    """An attribute a client library has deprecated: reading it warns."""

    status = 4004

    @property
    def code(self) -> int:
        warnings.warn("use .rcvd.code", DeprecationWarning, stacklevel=2)
        return 4004


class Broken:
    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)


class Holder:
    def __init__(self, value: object) -> None:
        self.value = value


@pytest.mark.parametrize(
    ("obj", "value"),
    [
        ({"value": 1}, 1),
        (MappingProxyType({"value": 2}), 2),
        (Holder(3), 3),
        ({"other": 1}, None),
        (Holder(None), None),
        (Broken(), None),
        (None, None),
        ("value", None),
        (b"value", None),
        (7, None),
        (["value"], None),
        (("value",), None),
    ],
    ids=repr,
)
def test_get_reads_a_key_else_an_attribute_and_never_raises(obj: object, value: object) -> None:
    assert get(obj, "value") == value
    assert lookup(obj, "value") == value


class Text(str):
    """A str subclass: it holds no keys, even though it is not exactly a str."""

    value = "attribute of a str subclass"


def test_a_scalar_subclass_holds_no_keys() -> None:
    assert get(Text("x"), "value") is None


def test_get_reads_a_deprecated_attribute_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get(Deprecated(), "code") == 4004


def test_the_normaliser_does_not_pay_for_silencing_warnings() -> None:
    # Silencing costs tens of times the read itself, so normalise reads loudly;
    # a channel whose library deprecates attributes reads it with get().
    with pytest.warns(DeprecationWarning, match=r"use \.rcvd\.code"):
        assert lookup(Deprecated(), "code") == 4004


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.dictionaries(st.sampled_from(["value", "status", "x"]), inner, max_size=3),
    max_leaves=6,
)


@given(json_values)
def test_get_agrees_with_the_normalisers_reader(value: object) -> None:
    assert get(value, "value") == lookup(value, "value")
    assert get(Holder(value), "value") == lookup(Holder(value), "value")


def tinychat(raw: object) -> Facts | None:
    if not is_a(raw, __name__.split(".")[0], "Holder"):
        return None
    return facts(status=get(raw, "value"), reason="bye")


def test_extract_with_normalises_the_first_readers_facts_else_falls_back() -> None:
    assert extract_with(Holder(4401), (tinychat,)) == CloseEvent(status=4401, reason="bye")
    assert extract_with('{"status": 1012}', (tinychat,)) == normalise({"status": 1012})
    assert extract_with(1006, (tinychat,), fallback=lambda raw: CloseEvent(reason="x")) == (
        CloseEvent(reason="x")
    )
