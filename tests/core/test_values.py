"""ValueType builds the same named tuple as typing.NamedTuple would from the same class body."""

import pickle
from typing import NamedTuple

import pytest

from handler.lifecycle import UrlState
from handler.values import ValueType


class Point(ValueType):
    """A point, maybe labelled."""

    x: int
    y: int = 0
    label: str | None = None  # shown beside it

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    @classmethod
    def origin(cls) -> "Point":
        return cls(0)


class TypingPoint(NamedTuple):
    x: int
    y: int = 0
    label: str | None = None


def test_fields_defaults_and_tuple_behaviour_match_typing_namedtuple():
    assert Point._fields == TypingPoint._fields
    assert Point._field_defaults == TypingPoint._field_defaults
    assert tuple(Point(1, 2)) == tuple(TypingPoint(1, 2)) == (1, 2, None)
    assert Point(1) == (1, 0, None)
    assert repr(Point(1, label="a")) == "Point(x=1, y=0, label='a')"
    assert Point.__doc__ == "A point, maybe labelled."


def test_methods_properties_and_replace_keep_the_type():
    moved = Point(3, -4)._replace(label="p")
    assert type(moved) is Point and moved.norm1 == 7 and moved.label == "p"
    assert Point.origin() == Point(0, 0)
    with pytest.raises(AttributeError):
        moved.x = 1  # immutable, and no instance dict
    with pytest.raises(AttributeError):
        moved.extra = 1


def test_values_pickle_round_trip_as_their_own_type():
    state = UrlState("https://cdn.example.com/a.css", "pending", 7, version="v1")
    assert pickle.loads(pickle.dumps(state)) == state
    assert type(pickle.loads(pickle.dumps(state))) is UrlState


def test_a_field_without_default_after_one_with_default_is_refused():
    with pytest.raises(TypeError, match="Bad: a field without a default follows one with a default"):
        class Bad(ValueType):
            a: int = 0
            b: int
