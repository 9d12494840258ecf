"""`@record`: the part of `@dataclass` cnnc uses, at a fraction of its import-time cost.

`dataclasses` compiles every generated method with its own `exec`, builds a slotted class twice over,
and importing it pulls in `inspect`; over the ~80 classes a `cnnc check` imports that was a third of
the whole process. A record's `__eq__`, `__hash__`, `__repr__`, frozen `__setattr__`/`__delattr__` and
pickling are shared closures (no compiling); only `__init__` is generated, from the class's own field
names (identifiers), and only the first time the class is constructed, so a class a run never builds
costs nothing. `tests/test_records.py` compares records with their `dataclass` twins.

    @record                                  # frozen, slotted, compared by field
    @record(frozen=False, eq=False)          # mutable, compared by identity
    @record(slots=False)                     # keeps a `__dict__` (for cached properties)

Fields: `name: T`, `name: T = default` or `name: T = field(default=…, default_factory=…, init=…,
compare=…, repr=…, kw_only=…)`; base classes' fields come first, and a field re-declared keeps its place.
A keyword-only field (`field(kw_only=True)`, or every field of `@record(kw_only=True)`) is taken by
name only, after the positional ones, as dataclasses do: a base's `span` with a default is then no
reason for a subclass's fields to have defaults. `__post_init__` runs after `__init__` when the class
defines one. `fields(x)` and `replace(x, **changes)` are `dataclasses.fields` and `dataclasses.replace`
for records. Not supported: `ClassVar`, `InitVar`, `KW_ONLY`, `order=True`.

When a record, when a dataclass: records are for the modules `cnnc check` imports (the AST, the IR,
the op registry, diagnostics, the elaborator's values), where start-up is measured
(`bench/startup.py`, `tests/test_startup.py`); `@dataclass(frozen=True, slots=True)` is for the rest
(lowering, search, commands), which import torch or optuna anyway and gain nothing from records.
Measured on the 2-core build machine (best of 7, December 2026): importing `dataclasses` takes about
6.4 ms (it pulls in `inspect`); making a frozen, slotted dataclass of three fields about 3.3 ms (its
methods compiled by `exec` when the class is made), a record 0.02 ms, plus 0.2 ms for its `__init__`
the first time one is built. Over the ~80 classes `cnnc check` imports, that is the difference.
"""

from __future__ import annotations

from operator import attrgetter


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class FrozenError(AttributeError):
    """Assigning to or deleting a field of a frozen record."""


class Field:
    """One field of a record: its name, default (or factory), and what it takes part in."""

    __slots__ = ("compare", "default", "default_factory", "init", "kw_only", "name", "repr", "type")

    def __init__(
        self,
        default=MISSING,
        default_factory=MISSING,
        init=True,
        repr=True,
        compare=True,
        kw_only=False,
    ):
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.name = ""
        self.type = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, compare={self.compare})"


def field(
    *, default=MISSING, default_factory=MISSING, init=True, repr=True, compare=True, kw_only=False
):
    """A field with options (see `Field`); written as a class attribute's value."""
    return Field(default, default_factory, init, repr, compare, kw_only)


def fields(record_or_class) -> tuple[Field, ...]:
    """The record's fields, in `__init__` order (those with `init=False` too)."""
    try:
        return tuple(record_or_class.__record_fields__.values())
    except AttributeError:
        raise TypeError(f"{record_or_class!r} is not a record") from None


def is_record(obj) -> bool:
    """True for a record class or instance."""
    return hasattr(obj, "__record_fields__")


def replace(obj, /, **changes):
    """A copy of `obj` with some fields changed (a new object: `__post_init__` runs again)."""
    table = obj.__record_fields__
    for name in changes:
        f = table.get(name)
        if f is None or not f.init:
            raise TypeError(f"{type(obj).__name__} has no field {name!r} to replace")
    kwargs = {
        name: changes[name] if name in changes else getattr(obj, name)
        for name, f in table.items()
        if f.init
    }
    return type(obj)(**kwargs)


def record(
    cls=None, /, *, frozen: bool = True, eq: bool = True, slots: bool = True, kw_only: bool = False
):
    """See the module docstring."""
    if cls is None:
        return lambda c: _make(c, frozen, eq, slots, kw_only)
    return _make(cls, frozen, eq, slots, kw_only)


def _make(cls, frozen: bool, eq: bool, slots: bool, kw_only: bool = False):
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063  (inspect is what start-up avoids)
    table: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        table.update(getattr(base, "__record_fields__", {}))
    for name, annotation in own.items():
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.type = name, annotation
        f.kw_only = f.kw_only or kw_only
        table[name] = f
    if slots:
        body = {
            k: v
            for k, v in cls.__dict__.items()
            if k not in own and k not in ("__dict__", "__weakref__")
        }
        body["__slots__"] = tuple(own)
        new = type(cls)(cls.__name__, cls.__bases__, body)
        new.__qualname__ = cls.__qualname__
    else:
        new = cls
        for name in own:  # as a dataclass: the class attribute is the default, if there is one
            if table[name].default is not MISSING:
                setattr(cls, name, table[name].default)
            elif name in cls.__dict__:
                delattr(cls, name)
    new.__record_fields__ = table
    _methods(new, table, frozen, eq)
    return new


def _methods(cls, table: dict[str, Field], frozen: bool, eq: bool) -> None:
    names = tuple(table)
    compared = tuple(n for n in names if table[n].compare)
    shown = tuple(n for n in names if table[n].repr)
    key = _getter(compared)

    def __repr__(self):
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    _install(cls, __repr__, "__repr__")
    _install(cls, _lazy_init(cls), "__init__")
    if eq:

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return key(self) == key(other)

        _install(cls, __eq__, "__eq__")
        if frozen:

            def __hash__(self):
                return hash(key(self))

            _install(cls, __hash__, "__hash__")
        elif cls.__dict__.get("__hash__") is None:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as a dataclass
    if frozen:
        _install(cls, _frozen_setattr, "__setattr__")
        _install(cls, _frozen_delattr, "__delattr__")
    if "__slots__" in cls.__dict__:

        def __getstate__(self):
            return [getattr(self, n) for n in names]

        def __setstate__(self, state):
            for n, v in zip(names, state):
                object.__setattr__(self, n, v)

        _install(cls, __getstate__, "__getstate__")
        _install(cls, __setstate__, "__setstate__")


def _install(cls, fn, name: str, over: bool = False) -> None:
    """Set a generated method, unless the class body defines its own (as `dataclass` does)."""
    mine = cls.__dict__.get(name)
    if mine is not None and not over and not getattr(mine, "_record_generated", False):
        return
    fn._record_generated = True
    fn.__name__ = name
    fn.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, fn)


def _getter(names: tuple[str, ...]):
    """self → the tuple of those fields' values (`attrgetter`, which returns a bare value for one)."""
    if not names:
        return lambda self: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return attrgetter(*names)


def _frozen_setattr(self, name, value):
    raise FrozenError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenError(f"cannot delete field {name!r}")


def _lazy_init(cls):
    """A stand-in `__init__` that generates the real one at the class's first construction."""

    def __init__(self, *args, **kwargs):
        real = _generate_init(cls)
        _install(cls, real, "__init__", over=True)
        real(self, *args, **kwargs)

    return __init__


def _generate_init(cls):
    """`__init__(self, a, b=<default>, …, *, c=<default>)`: keyword-only fields after `*`; each field set with `object.__setattr__` (frozen or not),
    `default_factory` called per instance, `init=False` fields set from their default, then
    `__post_init__` when the class has one."""
    table = cls.__record_fields__
    ns: dict = {"_set": object.__setattr__, "_MISSING": MISSING}
    params, keywords, lines = [], [], []
    for n, f in table.items():
        if f.default is not MISSING:
            ns[f"_d_{n}"] = f.default
        if f.default_factory is not MISSING:
            ns[f"_f_{n}"] = f.default_factory
        if not f.init:
            if f.default is not MISSING:
                lines.append(f"  _set(self, {n!r}, _d_{n})")
            elif f.default_factory is not MISSING:
                lines.append(f"  _set(self, {n!r}, _f_{n}())")
            continue
        into = keywords if f.kw_only else params
        if f.default is not MISSING:
            into.append(f"{n}=_d_{n}")
            lines.append(f"  _set(self, {n!r}, {n})")
        elif f.default_factory is not MISSING:
            into.append(f"{n}=_MISSING")
            lines.append(f"  _set(self, {n!r}, _f_{n}() if {n} is _MISSING else {n})")
        else:
            into.append(n)
            lines.append(f"  _set(self, {n!r}, {n})")
    if hasattr(cls, "__post_init__"):
        lines.append("  self.__post_init__()")
    signature = ", ".join(["self", *params, *(["*", *keywords] if keywords else [])])
    src = f"def __init__({signature}):\n{chr(10).join(lines) or '  pass'}\n"
    exec(src, ns)  # noqa: S102  field names are the class's own identifiers; defaults are passed by name
    return ns["__init__"]
