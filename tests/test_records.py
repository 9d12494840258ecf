"""`dsl.records.record` behaves as `dataclass` on every record class cnnc defines: the same
constructor, equality (spans aside), hash, repr, immutability, pickling, `fields` and `replace`."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.dsl import records
from cnnc.dsl.parse import parse_text

MODULES = [
    "cnnc.dsl.ast",
    "cnnc.dsl.diagnostics",
    "cnnc.dsl.source",
    "cnnc.dsl.layout",
    "cnnc.dsl.imports",
    "cnnc.compiler.elaborate.values",
    "cnnc.compiler.ir",
    "cnnc.compiler.types",
    "cnnc.compiler.names",
    "cnnc.compiler.ops.spec",
    "cnnc.compiler.elaborate.derive",
    "cnnc.compiler.elaborate.state",
    "cnnc.compiler.elaborate.scopes",
    "cnnc.compiler.analysis.summary",
    "cnnc.compiler.analysis.receptive_field",
    "cnnc.compiler.analysis.training_memory",
    "cnnc.compiler.render.view",
    "cnnc.compiler.render.dot",
    "cnnc.compiler.render.theme",
]


def _records(module_name):
    module = importlib.import_module(module_name)
    return [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__ and "__record_fields__" in c.__dict__
    ]


AST_CLASSES = _records("cnnc.dsl.ast")
ALL = [c for m in MODULES for c in _records(m)]


def _frozen(cls) -> bool:
    return "__setattr__" in cls.__dict__ and getattr(cls.__setattr__, "_record_generated", False)


def twin(cls):
    """The same class written with `dataclass`: its fields re-declared (bases' first), the same
    options, and `__post_init__` carried over."""
    specs = []
    for f in records.fields(cls):
        options = {"init": f.init, "repr": f.repr, "compare": f.compare, "kw_only": f.kw_only}
        if f.default is not records.MISSING:
            options["default"] = f.default
        if f.default_factory is not records.MISSING:
            options["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**options)))
    namespace = {"__post_init__": cls.__post_init__} if hasattr(cls, "__post_init__") else {}
    eq = "__eq__" in cls.__dict__
    return dataclasses.make_dataclass(
        cls.__name__,
        specs,
        frozen=_frozen(cls),
        eq=eq,
        slots="__slots__" in cls.__dict__,
        namespace=namespace,
    )


def test_the_record_classes_are_found():
    assert len(AST_CLASSES) >= 37 and len(ALL) >= 70
    for cls in AST_CLASSES:
        assert records.is_record(cls) and "__slots__" in cls.__dict__ and _frozen(cls)


def _required(cls):
    """None for each positional field without a default (keyword-only ones all have one)."""
    return [
        None
        for f in records.fields(cls)
        if f.init
        and not f.kw_only
        and f.default is records.MISSING
        and f.default_factory is records.MISSING
    ]


def _constructible(cls):
    return cls.__name__ not in ("SourceFile",)  # its __post_init__ reads a real text


@pytest.mark.parametrize(
    "cls", ALL, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}"
)
def test_a_record_matches_its_dataclass_twin(cls):
    other = twin(cls)
    assert [f.name for f in records.fields(cls)] == [f.name for f in dataclasses.fields(other)]
    if not _constructible(cls):
        return
    a, b = cls(*_required(cls)), other(*_required(cls))

    def parameters(c):  # the real __init__ exists once the class has been constructed
        return [(p.name, p.default) for p in inspect.signature(c.__init__).parameters.values()]

    shown = [
        (n, d if d is not records.MISSING else dataclasses.MISSING) for n, d in parameters(cls)
    ]
    assert [n for n, _ in shown] == [n for n, _ in parameters(other)]
    if "__repr__" not in cls.__dict__ or getattr(cls.__repr__, "_record_generated", False):
        assert repr(a) == repr(b).replace(other.__qualname__, cls.__qualname__, 1)
    if "__eq__" in cls.__dict__:
        assert a == cls(*_required(cls))
        assert (a.__hash__ is None) == (b.__hash__ is None)
        if a.__hash__ is not None:
            assert hash(a) == hash(cls(*_required(cls)))
    else:
        assert a != cls(*_required(cls)) and b != other(*_required(cls))  # identity
    name = next((f.name for f in records.fields(cls)), "x")
    if _frozen(cls):
        with pytest.raises(records.FrozenError):
            setattr(a, name, 1)
        if records.fields(cls):  # (a field-less slotted dataclass fails otherwise)
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(b, name, 1)
    assert hasattr(a, "__dict__") == hasattr(b, "__dict__")


@pytest.mark.parametrize("cls", AST_CLASSES, ids=lambda c: c.__name__)
def test_an_ast_record_pickles_and_copies(cls):
    a = cls(*_required(cls))
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a


def test_options_defaults_and_post_init():
    made = []

    @records.record(frozen=False)
    class Box:
        a: int
        b: list = records.field(default_factory=list)
        c: int = records.field(default=3, init=False)

        def __post_init__(self):
            made.append(self.a)

    one, two = Box(1), Box(2, [5])
    assert made == [1, 2] and one.b == [] and one.b is not Box(1).b and two.b == [5] and one.c == 3
    one.a = 7
    assert one.a == 7 and Box.__hash__ is None and Box(1) == Box(1) and Box(1) != Box(2)
    assert records.replace(two, a=4) == Box(4, [5])
    with pytest.raises(TypeError):
        records.replace(two, c=1)  # init=False
    with pytest.raises(TypeError):
        records.replace(two, nope=1)
    with pytest.raises(TypeError):
        records.fields(object())


def test_keyword_only_fields_come_after_the_positional_ones_as_in_a_dataclass():
    """A base's keyword-only field with a default (the AST's `span`) lets a subclass's fields go
    without one: `If(cond, then, else_, *, span=None)`, as `dataclass(kw_only=…)` writes it."""

    @records.record
    class Base:
        span: str = records.field(default="", compare=False, kw_only=True)

    @records.record
    class Pair(Base):
        left: int
        right: int = 0

    @records.record(kw_only=True)
    class Named:
        a: int
        b: int = 2

    assert Pair(1, 2, span="s") == Pair(1, 2) and Pair(1, span="s").span == "s"
    assert records.replace(Pair(1, span="s"), right=5) == Pair(1, 5)
    assert records.replace(Pair(1, span="s"), right=5).span == "s"
    assert [f.name for f in records.fields(Pair)] == ["span", "left", "right"]
    assert Named(a=1) == Named(a=1, b=2)
    with pytest.raises(TypeError):
        Pair(1, 2, "s")  # `span` is not positional
    with pytest.raises(TypeError):
        Named(1)
    with pytest.raises(TypeError):
        Pair()  # `left` has no default
    params = inspect.signature(Pair.__init__).parameters.values()
    assert [(p.name, p.kind.name) for p in params][1:] == [
        ("left", "POSITIONAL_OR_KEYWORD"),
        ("right", "POSITIONAL_OR_KEYWORD"),
        ("span", "KEYWORD_ONLY"),
    ]


def test_a_class_body_keeps_its_own_methods():
    @records.record
    class Shown:
        a: int

        def __repr__(self):
            return "mine"

    assert repr(Shown(1)) == "mine" and Shown(1) == Shown(1)


SOURCE = st.sampled_from(
    [
        "network n { input [3, 8, 8] return in -> Conv(4, 3) -> ReLU }",
        "block B(c, s = 1) { return in -> a: Conv(c, 3, stride = s) }\nnetwork m = B(4)",
        "network t { input image [3, 8, 8]\n input depth [1, 8, 8]\n return {out: image, 0: (depth,)} }",
    ]
)


@settings(max_examples=30, deadline=None)
@given(SOURCE, st.integers(0, 3))
def test_equality_ignores_spans_and_replace_keeps_the_rest(text, shift):
    a = parse_text(text, path="a.cnn")
    b = parse_text(" " * shift + text, path="b.cnn")  # other spans, same structure
    assert a == b and hash(a) == hash(b)
    first = a.items[0]
    renamed = records.replace(first, name=first.name + "x")
    assert renamed != first and renamed.span == first.span
