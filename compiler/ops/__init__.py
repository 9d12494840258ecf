"""The op registry: every primitive is described once, here and in its family file.

An `OpSpec` holds an op's DSL parameters (with `torch.nn`'s names beside the DSL spelling), its shape
rule, its parameter and MAC counts, its receptive-field step, its drawing family and the name of the
torch constructor that lowering uses (a string: the registry never imports torch). Adding an op means
adding one entry and its tests.

`infer(args, inputs) -> (args, TensorType)` completes the arguments with what the inputs decide
(`in_channels`, `num_features`, resolved `padding`) and returns the output type, or raises `OpError`.
`register` wraps every `infer` with the size bounds below, so no op can make a tensor or a layer
that the checker accepts and torch cannot allocate.

Ranges: a parameter's value must lie where torch's constructor *and* forward accept it (a Dropout
`p` in [0, 1], a positive finite `eps`, …); `coerce.py` enforces `ParamSpec`'s bounds, the shape
rules the rest. Sizes are bounded by the named limits here (the registry keeps them: they are the
ops' own rules), checked before any work proportional to them is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from cnnc.compiler.types import TensorType

REQUIRED = object()  # a ParamSpec default meaning "must be given"
VARIADIC = -1

MAX_SIZE = 2**20  # any integer op argument: channels, features, kernel, stride, padding, groups, …
MAX_ELEMENTS = 2**31  # elements of one tensor per sample (8 GiB of float32 at batch 1)
MAX_LAYER_PARAMS = 2**31  # parameters of one layer (a Linear on a huge Flatten, a wide Conv)


class OpError(Exception):
    """A rule of an op is broken. `code` is the diagnostic code; `help` proposes a fix.

    A merge names the inputs at fault by position (`culprits`); the elaborator, which knows each
    input's node, turns them into labels (`describe_inputs`), filling `span` (the primary span, the
    first culprit's layer), `secondary` labels and `notes`.
    """

    def __init__(self, code: str, message: str, help: str = "", label: str = "",
                 culprits: tuple[int, ...] = (), describe_inputs: Callable | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        self.label = label
        self.culprits = culprits
        self.describe_inputs = describe_inputs  # (nodes of the inputs) -> OpError with spans
        self.span = None
        self.secondary: tuple = ()
        self.notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One DSL parameter. `kind` names its coercion rule (see `coerce.py`)."""

    name: str  # as written in .cnn files
    torch_name: str  # as torch.nn spells it; the IR uses this one
    kind: str
    default: Any = REQUIRED
    minimum: int | float | None = None  # the value must be >= minimum
    maximum: int | float | None = None  # the value must be <= maximum
    above: float | None = None  # the value must be > above (a positive `eps`)


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
    # How many parameters may be passed by position (None: all, in `params` order). The norms take
    # none: torch's first positional argument is the feature count, which cnnc infers.
    positional: int | None = None
    inferred: str = ""  # the torch argument cnnc infers from the input (`in_channels`), if any

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


REGISTRY: dict[str, OpSpec] = {}


def register(*specs: OpSpec) -> None:
    for spec in specs:
        REGISTRY[spec.name] = replace(spec, infer=_bounded(spec))


def _bounded(spec: OpSpec) -> Callable:
    """`spec.infer`, then the size bounds on what it made (one rule for every op)."""
    infer = spec.infer

    def bounded_infer(args: dict, inputs) -> tuple[dict, TensorType]:
        args, out = infer(args, inputs)
        check_size(spec.name, out)
        params = spec.count_params(args, inputs, out)
        if params > MAX_LAYER_PARAMS:
            raise OpError("E0308", f"`{spec.name}` would hold {params:,} parameters, over cnnc's "
                          f"bound of {MAX_LAYER_PARAMS:,} per layer",
                          help="reduce the channels or features, or pool before the layer")
        return args, out

    return bounded_infer


def check_size(op: str, out: TensorType) -> None:
    """E0308 when a tensor exceeds `MAX_ELEMENTS` (checked on the shape, before anything exists)."""
    if out.numel > MAX_ELEMENTS:
        raise OpError("E0308", f"`{op}` would make a tensor of {out.numel:,} elements per sample "
                      f"({out}), over cnnc's bound of {MAX_ELEMENTS:,}",
                      help="use a smaller input or fewer channels, or downsample earlier")


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
