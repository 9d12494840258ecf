"""`dsl.records.record` behaves as `dataclass(frozen=True, slots=True)` on every AST class: the same
constructor, equality (spans aside), hash, repr, immutability, pickling and `dataclasses` helpers."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.dsl import ast
from cnnc.dsl.parse import parse_text

CLASSES = [c for _, c in inspect.getmembers(ast, inspect.isclass)
           if c.__module__ == ast.__name__ and "__dataclass_fields__" in c.__dict__]


def twin(cls):
    """The same class written with `dataclass` (its fields re-declared, bases' first)."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default, compare=f.compare, repr=f.repr))
              for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True)


def test_every_ast_class_is_a_record():
    assert len(CLASSES) >= 37
    for cls in CLASSES:
        assert dataclasses.is_dataclass(cls) and "__slots__" in cls.__dict__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_record_matches_its_dataclass_twin(cls):
    other = twin(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert names == [f.name for f in dataclasses.fields(other)]

    def parameters(c):
        return [(p.name, p.default) for p in inspect.signature(c.__init__).parameters.values()]

    assert parameters(cls) == parameters(other)
    required = [None for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    a, b = cls(*required), other(*required)
    assert repr(a) == repr(b).replace(other.__qualname__, cls.__qualname__, 1)
    assert a == cls(*required) and hash(a) == hash(cls(*required))
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, names[0], 1)
    assert not hasattr(a, "__dict__") and not hasattr(b, "__dict__")  # slots


SOURCE = st.sampled_from([
    "network n { input [3, 8, 8] return in -> Conv(4, 3) -> ReLU }",
    "block B(c, s = 1) { return in -> a: Conv(c, 3, stride = s) }\nnetwork m = B(4)",
    "network t { input image [3, 8, 8]\n input depth [1, 8, 8]\n return {out: image, 0: (depth,)} }",
])


@settings(max_examples=30, deadline=None)
@given(SOURCE, st.integers(0, 3))
def test_equality_ignores_spans_and_replace_keeps_the_rest(text, shift):
    a = parse_text(text, path="a.cnn")
    b = parse_text(" " * shift + text, path="b.cnn")  # other spans, same structure
    assert a == b and hash(a) == hash(b)
    first = a.items[0]
    renamed = dataclasses.replace(first, name=first.name + "x")
    assert renamed != first and renamed.span == first.span
