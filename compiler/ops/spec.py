"""The op registry's types and rules: every primitive is described once, here and in its family file.

An `OpSpec` is everything cnnc knows about an op, and every other table (lowering, display, the op
reference `cnnc ops` prints) is read from it:
- its DSL parameters (`ParamSpec`: the DSL name, torch.nn's name, a `ParamKind`, default, range);
- its shape rule `infer(args, inputs) -> (args, TensorType)`, which completes the arguments with
  what the inputs decide (`in_channels`, `num_features`, resolved `padding`) or raises `OpError`;
- its parameter and MAC counts (`count_params`, `count_macs`: `NO_PARAMS` / `NO_MACS` say zero);
- its receptive-field rule `rf` (required: `POINTWISE` for ops that keep each position, `GLOBAL`,
  or a function giving an `RFAxes`: per axis, exactly which input positions each output position
  reads, in integers — `compiler/ops/reads.py`);
- how it lowers (`lowering`: a `Lowering`) and, for modules, the torch constructor and the function
  `build(node) -> Layer` that maps the IR's arguments onto it;
- how it reads on a table or a diagram (`label(args)`, `short`), its family (a `Family`) and the
  formulas and example of its reference page.

`register` checks each spec (`check_spec`: no piece may be missing; a name registered twice is
refused) and wraps its `infer` with the size bounds below, so no op can make a tensor or a layer
that the checker accepts and torch cannot allocate. The registry never imports torch: constructors
are named by strings.

Ranges: a parameter's value must lie where torch's constructor *and* forward accept it (a Dropout
`p` in [0, 1], a positive finite `eps`, …); `coerce.py` enforces `ParamSpec`'s bounds, the shape
rules the rest. Sizes are bounded by the named limits here (the registry keeps them: they are the
ops' own rules), checked before any work proportional to them is done.

An op may take a second tensor as a keyword argument (`Upsample(like = skip)`, `Crop(like = x)`: a
`ParamKind.TENSOR` parameter, used for its size only). The node then reads `(x, t)`, x first, and
its `args` do not hold the tensor; `infer` and `rf` receive both types; the module's forward takes
`(x, t)`. `arity` counts x and every TENSOR parameter; `OpSpec.takes(n)` says whether a node may
read n inputs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

from cnnc.compiler.ops.reads import Reads
from cnnc.compiler.types import TensorType
from cnnc.dsl.records import MISSING, field, fields, record, replace

TYPE_CHECKING = False  # `typing` stays unimported at run time (start-up); annotations only
if TYPE_CHECKING:
    from typing import Any

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

    def __init__(
        self,
        code: str,
        message: str,
        help: str = "",
        label: str = "",
        culprits: tuple[int, ...] = (),
        describe_inputs: Callable | None = None,
    ):
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


class ParamKind(enum.Enum):
    """How a DSL value becomes a parameter's value (`coerce.py` has one rule per kind)."""

    INT = "an integer"
    FLOAT = "a number"
    BOOL = "`true` or `false`"
    PAIR = "an integer or [h, w]"
    PAIR_OR_NONE = "an integer, [h, w] or `none`"
    PAD = "an integer, [h, w] or `same`"
    FLOATS = "a number or [h, w]"  # a scale factor per axis
    SIDES = "an integer or [left, right, top, bottom]"  # F.pad's order
    SHAPE = "a list of integers, one of them -1 at most"
    CHOICE = "one of the strings listed"
    TENSOR = "a tensor (only its size is used)"


@record
class ParamSpec:
    """One DSL parameter. `kind` names its coercion rule (see `coerce.py`); a default of None
    means "not given" (a `none` in the program is then accepted too)."""

    name: str  # as written in .cnn files
    torch_name: str  # as torch.nn spells it; the IR uses this one
    kind: ParamKind
    default: Any = REQUIRED
    minimum: int | float | None = None  # the value must be >= minimum
    maximum: int | float | None = None  # the value must be <= maximum
    above: float | None = None  # the value must be > above (a positive `eps`)
    choices: tuple[str, ...] = ()  # the strings a CHOICE takes


class Family(enum.StrEnum):
    """What an op is, for grouping (`cnnc ops`), colour (render's themes) and the summary table."""

    CONV = "conv"
    LINEAR = "linear"
    NORM = "norm"
    ACT = "act"
    POOL = "pool"
    RESIZE = "resize"  # changes the spatial grid: upsampling, padding, cropping, pixel shuffle
    MERGE = "merge"
    RESHAPE = "reshape"
    IO = "io"


FAMILY_TITLES = {
    Family.CONV: "convolutions",
    Family.LINEAR: "fully connected",
    Family.NORM: "normalisation",
    Family.ACT: "activations",
    Family.POOL: "pooling",
    Family.RESIZE: "resizing",
    Family.MERGE: "merges (written `+`, `*`, `concat(…)`)",
    Family.RESHAPE: "shape plumbing",
    Family.IO: "the network's input",
}


class Saves(enum.Enum):
    """What an op's backward reads of its own tensors, from PyTorch's derivative formulas
    (derivatives.yaml): training memory keeps these alive until the backward pass reaches the op."""

    NOTHING = "nothing"
    INPUT = "input"  # each input (a Conv; a Mul: both sides, as an SE gate needs both gradients)
    OUTPUT = "output"  # its result (ReLU, Sigmoid, Tanh, Softmax)
    BOTH = "both"


class Lowering(enum.StrEnum):
    """How a node becomes PyTorch."""

    INPUT = "input"  # a forward argument
    MERGE = (
        "merge"  # a function of its inputs (`torch_ctor`: operator.add, operator.mul, torch.cat)
    )
    PARAMETER = (
        "parameter"  # a bare nn.Parameter on the enclosing module, multiplied in (LayerScale)
    )
    MODULE = "module"  # an nn.Module built by `build`, called on the node's inputs


@record
class Layer:
    """`<ctor>(*args, **kwargs)`: a torch.nn class name (`Conv2d`) or a class of lower/layers.py
    by its dotted path. For a PARAMETER op: `ctor` "Parameter", args (shape, initial value)."""

    ctor: str
    args: tuple
    kwargs: Mapping[str, Any]


# -- receptive fields ------------------------------------------------------------------------------


@record
class RFAxes:
    """How an op's output positions read its input, along height and width: a `Reads` pattern
    (`compiler/ops/reads.py`), or GLOBAL where each output reads the whole axis (Softmax over it)."""

    h: Reads | RFRule
    w: Reads | RFRule


class RFRule(enum.Enum):
    """Receptive-field rules that are constants rather than functions of the arguments."""

    POINTWISE = "each output position sees the same input position (elementwise, per-position ops)"
    GLOBAL = "each output sees every input position (global pooling, Linear, Flatten)"
    MEET = "the union of the inputs' fields, position by position (merges)"
    ORIGIN = "a network input: one pixel"
    REGROUPED = (
        "each output position reads some input positions, regrouped across the map "
        "(a reshape to another map): at most every input position"
    )


POINTWISE = RFRule.POINTWISE
GLOBAL = RFRule.GLOBAL
MEET = RFRule.MEET
ORIGIN = RFRule.ORIGIN
REGROUPED = RFRule.REGROUPED


def no_params(args, inputs, out) -> int:
    """Ops without trainable parameters."""
    return 0


def no_macs(args, inputs, out) -> int:
    """Ops whose work is no multiply-accumulate of a conv, transposed conv, linear or matmul:
    FlopCounterMode counts none for them (pools, norms, activations, interpolation), nor does cnnc."""
    return 0


NO_PARAMS = no_params
NO_MACS = no_macs


def not_a_module(node) -> Layer:
    """`build` of ops that lower to no module (merges and the input)."""
    raise TypeError(f"`{node.op}` lowers to no module")


def no_detail(args) -> str:
    """`label` of ops whose name says everything (`ReLU`, `BatchNorm`)."""
    return ""


@record
class OpSpec:
    """One op; see the module docstring. Every field without a default is a required piece."""

    name: str
    doc: str  # one line, for `cnnc ops` and the page's title
    family: Family
    params: tuple[ParamSpec, ...]
    infer: Callable  # (args, inputs) -> (args, TensorType), or raises OpError
    count_params: Callable  # (args, inputs, out) -> trainable parameters (`numel`)
    count_macs: Callable  # (args, inputs, out) -> multiply-accumulates at batch 1
    rf: Callable | RFRule  # (args, inputs) -> RFAxes | RFRule, or a constant RFRule
    lowering: Lowering
    torch_ctor: str  # "torch.nn.Conv2d", a lower/layers.py class, a merge's function; "" for Input
    build: Callable  # (node) -> Layer, for MODULE and PARAMETER ops; `not_a_module` otherwise
    label: Callable  # (args) -> the detail after the name: `3×3/2, 64`; tolerates missing keys
    shape_rule: str  # the shape rule as a formula, for the reference page
    params_rule: str  # the parameter count as a formula
    macs_rule: str  # the MAC count as a formula
    example: str  # a .cnn expression using the op, e.g. `Conv(64, 3, stride = 2, pad = 1)`
    arity: int = 1  # inputs of a node with every TENSOR parameter given; VARIADIC for merges
    in_place: bool = (
        False  # an elementwise activation torch can run in place: no new activation memory
    )
    view: bool = False  # output aliases the input (Flatten, Identity, Dropout at inference)
    layer: bool = True  # callable by name in a .cnn file (merges are written `+`, `*`, `concat`)
    aliases: tuple[str, ...] = field(default=())
    short: str = ""  # the name on tables and diagrams when shorter than `name` (`LRN`)
    glyph: str = ""  # a merge's symbol on diagrams (`⊕`)
    # How many parameters may be passed by position (None: all, in `params` order). The norms take
    # none: torch's first positional argument is the feature count, which cnnc infers.
    positional: int | None = None
    inferred: str = ""  # the torch argument cnnc infers from the input (`in_channels`), if any
    # Training memory (`compiler/analysis/training_memory.py`). `saves` must be declared: a `Saves`,
    # or a function (args) -> Saves where the arguments decide (a constant Pad saves nothing, a
    # reflecting one its input), so a new op cannot silently save nothing. An in-place activation
    # whose backward needs its input saves a clone of it first (`clones_in_place`). Beside the saved
    # tensors, the backward may keep `saved_bytes` bytes per output element (pool indices, dropout
    # masks) and `saved_tensors` more tensors of the output's size and dtype (LRN's intermediates).
    # `training_tensor`: a view at inference that makes a tensor of its own while training (Dropout,
    # StochasticDepth).
    saves: Saves | Callable | None = None
    clones_in_place: bool = False
    saved_bytes: int = 0
    saved_tensors: int = 0
    training_tensor: bool = False
    # Merges: how one is written in a .cnn file (`written`) and in the standalone .py (`source`), each
    # an infix operator (`+`) or a call with `{}` for the operands (`concat({})`): `merge_text`; the
    # tensor method that accumulates the others into an input nothing else reads (`add_`), if any.
    written: str = ""
    source: str = ""
    accumulate: str = ""
    # A merge whose operands may be swapped without changing its value (Add, Mul; not Concat):
    # architectures that differ only in their order are one (`search/architecture.py`).
    commutative: bool = False
    # No backward reads its output, so an in-place op after it may overwrite it (analysis/memory.py).
    overwritable: bool = False
    reshape: bool = False  # a view only where the strides allow one, else a copy (Flatten, Reshape)
    tabled: bool = False  # on the summary table even where its family is folded (Flatten)
    # ONNX expresses it only where its output size divides its input (one fixed window per axis)
    onnx_divides: bool = False

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def tensor_params(self) -> tuple[ParamSpec, ...]:
        return tuple(p for p in self.params if p.kind is ParamKind.TENSOR)

    def takes(self, count: int) -> bool:
        """Whether a node of this op may read `count` inputs: x, and each TENSOR parameter given
        (every one for `arity`, fewer when some are optional)."""
        if self.arity == VARIADIC:
            return True
        optional = sum(1 for p in self.tensor_params if p.default is not REQUIRED)
        return self.arity - optional <= count <= self.arity

    def saved(self, args) -> Saves:
        """What the backward of a node with these arguments reads (`saves`, applied)."""
        return self.saves if isinstance(self.saves, Saves) else self.saves(args)

    def step(self, args, inputs) -> RFAxes | RFRule:
        """The receptive-field rule, applied: an `RFAxes` or a constant `RFRule`."""
        return self.rf if isinstance(self.rf, RFRule) else self.rf(args, inputs)

    @property
    def symbol(self) -> str:
        """A merge's symbol as a .cnn file writes it: `+`, `*`, `concat`."""
        return self.written.removesuffix("({})")

    @property
    def display_name(self) -> str:
        return self.short or self.name


class SpecError(Exception):
    """An OpSpec misses a piece or contradicts itself: a bug in cnnc's registry."""


def _required_pieces() -> tuple[str, ...]:
    return tuple(
        f.name for f in fields(OpSpec) if f.default is MISSING and f.default_factory is MISSING
    )


REQUIRED_PIECES = _required_pieces()


def check_spec(spec: OpSpec) -> None:
    """Raise `SpecError` naming each piece `spec` lacks or gets wrong (see the module docstring)."""
    problems = [f"`{piece}` is missing" for piece in REQUIRED_PIECES if _missing(spec, piece)]
    if not (isinstance(spec.saves, Saves) or callable(spec.saves)):
        problems.append("`saves` must be declared (a Saves or a function: what its backward reads)")
    if not problems:
        problems += _contradictions(spec)
    if problems:
        raise SpecError(f"op `{spec.name}`: " + "; ".join(dict.fromkeys(problems)))


def _missing(spec: OpSpec, piece: str) -> bool:
    value = getattr(spec, piece, None)
    if piece == "torch_ctor" and spec.lowering is Lowering.INPUT:
        return value is None  # the input is a forward argument: no constructor
    return value is None or value == ""


def _contradictions(spec: OpSpec) -> list[str]:
    out = []
    for piece, kind in (("family", Family), ("lowering", Lowering)):
        if not isinstance(getattr(spec, piece), kind):
            out.append(f"`{piece}` must be a {kind.__name__}")
    for piece in ("infer", "count_params", "count_macs", "build", "label"):
        if not callable(getattr(spec, piece)):
            out.append(f"`{piece}` must be a function")
    if not (isinstance(spec.rf, RFRule) or callable(spec.rf)):
        out.append("`rf` must be an RFRule or a function")
    modules = spec.lowering in (Lowering.MODULE, Lowering.PARAMETER)
    if modules == (spec.build is not_a_module):
        out.append(
            "`build` must describe the module of a MODULE or PARAMETER op, and only of those"
        )
    for p in spec.params:
        if not isinstance(p.kind, ParamKind):
            out.append(f"parameter `{p.name}`: `kind` must be a ParamKind")
        if (p.kind is ParamKind.CHOICE) != bool(p.choices):
            out.append(f"parameter `{p.name}`: a CHOICE lists its choices, and only a CHOICE")
    if (spec.lowering is Lowering.MERGE) != bool(spec.written and spec.source):
        out.append("`written` and `source` must describe a merge, and only a merge")
    if spec.tensor_params and spec.arity != 1 + len(spec.tensor_params):
        out.append("`arity` must count x and each TENSOR parameter")
    return out


REGISTRY: dict[str, OpSpec] = {}
# alias → the first op in REGISTRY's order that has it (what `lookup` would find by scanning), kept
# by `register`, since every name the elaborator cannot find locally (`range`, `max`) is looked up
ALIASES: dict[str, OpSpec] = {}


def register(*specs: OpSpec) -> None:
    """Add ops to REGISTRY, each checked; an op registered twice is a `SpecError` (replacing it
    silently would leave two definitions, one of them dead), and nothing is added then."""
    names = [spec.name for spec in specs]
    for spec in specs:
        check_spec(spec)
        if spec.name in REGISTRY or names.count(spec.name) > 1:
            raise SpecError(f"op `{spec.name}` is registered twice")
    for spec in specs:
        REGISTRY[spec.name] = replace(spec, infer=_bounded(spec))
    ALIASES.clear()
    for spec in REGISTRY.values():
        for alias in spec.aliases:
            ALIASES.setdefault(alias, spec)


def _bounded(spec: OpSpec) -> Callable:
    """`spec.infer`, then the size bounds on what it made (one rule for every op)."""
    infer = spec.infer

    def bounded_infer(args: dict, inputs) -> tuple[dict, TensorType]:
        args, out = infer(args, inputs)
        check_size(spec.name, out)
        params = spec.count_params(args, inputs, out)
        if params > MAX_LAYER_PARAMS:
            raise OpError(
                "E0308",
                f"`{spec.name}` would hold {params:,} parameters, over cnnc's "
                f"bound of {MAX_LAYER_PARAMS:,} per layer",
                help="reduce the channels or features, or pool before the layer",
            )
        return args, out

    bounded_infer.__wrapped__ = infer
    return bounded_infer


def check_size(op: str, out: TensorType) -> None:
    """E0308 when a tensor exceeds `MAX_ELEMENTS` (checked on the shape, before anything exists)."""
    if out.numel > MAX_ELEMENTS:
        raise OpError(
            "E0308",
            f"`{op}` would make a tensor of {out.numel:,} elements per sample "
            f"({out}), over cnnc's bound of {MAX_ELEMENTS:,}",
            help="use a smaller input or fewer channels, or downsample earlier",
        )


def merge_text(form: str, operands) -> str:
    """A merge's `written` or `source` form applied to its operands' texts: `a + b`, `concat(a, b)`."""
    return form.format(", ".join(operands)) if "{}" in form else f" {form} ".join(operands)


def merge_written(symbol: str) -> OpSpec | None:
    """The merge a .cnn file writes with `symbol` (`+`, `*`, `concat`)."""
    return next((s for s in REGISTRY.values() if s.written and s.symbol == symbol), None)


def lookup(name: str) -> OpSpec | None:
    """The op a DSL name refers to, aliases included."""
    spec = REGISTRY.get(name)
    return spec if spec is not None else ALIASES.get(name)


def dsl_names() -> list[str]:
    return [n for s in REGISTRY.values() if s.layer for n in (s.name, *s.aliases)]


def describe(op: str, args: Mapping) -> str:
    """The one short description of a node, on tables and diagrams: `Conv 3×3/2, 64`, `LRN 5`,
    `Linear, 1000`, `+` (a merge). Reads torch.nn's argument names; tolerates missing ones (a node
    whose inference failed keeps the arguments as written)."""
    spec = lookup(op)
    if spec is None:
        return op
    detail = spec.label(args)
    name = spec.display_name
    return f"{name}{detail}" if detail.startswith(",") else f"{name} {detail}".rstrip()


def expect_rank(inp: TensorType, rank: int, op: str, help: str = "") -> None:
    if inp.rank != rank:
        what = {3: "a [C, H, W] feature map", 1: "a vector [N]"}[rank]
        raise OpError("E0304", f"`{op}` needs {what}, but got {inp}", help)
