"""`@record`: `@dataclass(frozen=True, slots=True)`, made in one `exec` per class.

dataclasses generates each method with its own `exec` and builds a slotted class twice over; for the
AST's ~40 classes that was a third of a whole `cnnc check` (about 30 ms at start-up). `record` makes
the same class — `__slots__`, `__init__` (fields in definition order, base classes' first),
`__eq__`/`__hash__` over the fields with `compare=True`, `__repr__` over those with `repr=True`,
frozen `__setattr__`/`__delattr__`, pickling — from one generated source, and keeps real
`dataclasses.Field`s in `__dataclass_fields__`, so `dataclasses.fields`, `replace` and `is_dataclass`
work as before. `tests/test_records.py` compares it with `dataclass` on every AST class.

Only what the AST uses is supported: `field(default=…, compare=…, repr=…)` or a plain default, no
`ClassVar`, `InitVar`, `__post_init__` or keyword-only fields.
"""

from __future__ import annotations

import dataclasses

_MISSING = dataclasses.MISSING


def record(cls):
    """See the module docstring."""
    own = cls.__dict__.get("__annotations__", {})
    base_fields = {}
    for base in reversed(cls.__mro__[1:]):
        base_fields.update(getattr(base, "__dataclass_fields__", {}))
    fields = dict(base_fields)
    for name, annotation in own.items():
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, dataclasses.Field) else dataclasses.field(default=value)
        f.name, f.type, f._field_type = name, annotation, dataclasses._FIELD
        fields[name] = f
    body = {k: v for k, v in cls.__dict__.items() if k not in own and k not in ("__dict__", "__weakref__")}
    body["__slots__"] = tuple(own)
    body["__dataclass_fields__"] = fields
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    names = list(fields)
    defaults = {}
    params = []
    for n in names:
        f = fields[n]
        if f.default is not _MISSING:
            defaults[f"_d_{n}"] = f.default
            params.append(f"{n}=_d_{n}")
        elif f.default_factory is not _MISSING:
            defaults[f"_f_{n}"] = f.default_factory
            params.append(f"{n}=_MISSING")
        else:
            params.append(n)
    init_lines = []
    for n in names:
        f = fields[n]
        value = f"_f_{n}() if {n} is _MISSING else {n}" if f.default_factory is not _MISSING else n
        init_lines.append(f"  _set(self, {n!r}, {value})")
    compared = [n for n in names if fields[n].compare]
    shown = [n for n in names if fields[n].repr]
    key = "(" + "".join(f"self.{n}," for n in compared) + ")"
    okey = "(" + "".join(f"other.{n}," for n in compared) + ")"
    rep = "[" + ", ".join(f"'{n}=' + repr(self.{n})" for n in shown) + "]"
    src = f"""
def __init__(self, {', '.join(params)}):
{chr(10).join(init_lines) or '  pass'}
def __eq__(self, other):
  if other.__class__ is not self.__class__:
    return NotImplemented
  return {key} == {okey}
def __hash__(self):
  return hash({key})
def __repr__(self):
  return self.__class__.__qualname__ + '(' + ', '.join({rep}) + ')'
def __setattr__(self, name, value):
  raise _Frozen(f"cannot assign to field {{name!r}}")
def __delattr__(self, name):
  raise _Frozen(f"cannot delete field {{name!r}}")
def __getstate__(self):
  return [getattr(self, n) for n in _names]
def __setstate__(self, state):
  for n, v in zip(_names, state):
    _set(self, n, v)
"""
    ns = dict(defaults, _set=object.__setattr__, _MISSING=_MISSING, _Frozen=dataclasses.FrozenInstanceError,
              _names=tuple(names))
    exec(src, ns)  # noqa: S102  generated from the class's own field names (identifiers), no input
    for fn in ("__init__", "__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__", "__getstate__",
               "__setstate__"):
        ns[fn].__qualname__ = f"{new.__qualname__}.{fn}"
        setattr(new, fn, ns[fn])
    return new
