"""The op registry: every primitive is described once, here and in its family file.

An `OpSpec` holds an op's DSL parameters (with `torch.nn`'s names beside the DSL spelling), its shape
rule, its parameter and MAC counts, its receptive-field step, its drawing family and the name of the
torch constructor that lowering uses (a string: the registry never imports torch). Adding an op means
adding one entry and its tests.

`infer(args, inputs) -> (args, TensorType)` completes the arguments with what the inputs decide
(`in_channels`, `num_features`, resolved `padding`) and returns the output type, or raises `OpError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cnnc.compiler.types import TensorType

REQUIRED = object()  # a ParamSpec default meaning "must be given"
VARIADIC = -1


class OpError(Exception):
    """A rule of an op is broken. `code` is the diagnostic code; `help` proposes a fix."""

    def __init__(self, code: str, message: str, help: str = "", label: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        self.label = label


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One DSL parameter. `kind` names its coercion rule (see `coerce.py`)."""

    name: str  # as written in .cnn files
    torch_name: str  # as torch.nn spells it; the IR uses this one
    kind: str
    default: Any = REQUIRED
    minimum: int | float | None = None


@dataclass(frozen=True, slots=True)
class RFStep:
    """How an op moves the receptive field along one axis pair: kernel, stride, padding (h, w)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


GLOBAL = "global"  # an op whose output sees every input position (global pooling, Linear)


def _zero(args, inputs, out) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class OpSpec:
    name: str
    params: tuple[ParamSpec, ...]
    infer: Callable
    family: str  # conv | linear | norm | act | pool | merge | reshape | io: colour and grouping
    torch_ctor: str
    count_params: Callable = _zero
    count_macs: Callable = _zero
    rf: Callable | None = None  # (args, inputs) -> RFStep | GLOBAL; None: position-preserving
    arity: int = 1
    in_place: bool = False  # an elementwise activation torch can run in place: no new activation memory
    view: bool = False  # output aliases the input (Flatten, Identity, Dropout at inference)
    layer: bool = True  # callable by name in a .cnn file (merges are written `+`, `*`, `concat`)
    aliases: tuple[str, ...] = field(default=())
    doc: str = ""

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


REGISTRY: dict[str, OpSpec] = {}


def register(*specs: OpSpec) -> None:
    for spec in specs:
        REGISTRY[spec.name] = spec


def lookup(name: str) -> OpSpec | None:
    """The op a DSL name refers to, aliases included."""
    if name in REGISTRY:
        return REGISTRY[name]
    return next((s for s in REGISTRY.values() if name in s.aliases), None)


def dsl_names() -> list[str]:
    return [n for s in REGISTRY.values() if s.layer for n in (s.name, *s.aliases)]


def expect_rank(inp: TensorType, rank: int, op: str, help: str = "") -> None:
    if inp.rank != rank:
        what = {3: "a [C, H, W] feature map", 1: "a vector [N]"}[rank]
        raise OpError("E0304", f"`{op}` needs {what}, but got {inp}", help)


from cnnc.compiler.ops import act, conv, extra, merge, norm, pool, reshape  # noqa: E402,F401  (fills REGISTRY)
