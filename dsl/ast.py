"""The AST: frozen records (`dsl/records.py`: dataclasses made faster), each with the `span` of the text that made it.

Spans do not take part in equality, so `parse(format(x)) == parse(x)` compares structure alone.
Expressions evaluate to numbers, strings, lists, tensors or layers; which is decided in elaboration.
"""

from __future__ import annotations

from cnnc.dsl.records import field, record
from cnnc.dsl.source import Span


def _span(kw_only: bool = False) -> Span:
    return field(default=None, compare=False, repr=False, kw_only=kw_only)  # type: ignore[return-value]


# -- expressions ---------------------------------------------------------------------------


@record
class Expr:
    # keyword-only: each expression's own fields come first, and those without a default need none
    span: Span = _span(kw_only=True)


@record
class Number(Expr):
    value: int | float = 0
    text: str = field(default="", compare=False)  # as written, so the formatter keeps `1e-4`


@record
class String(Expr):
    value: str = ""


@record
class Bool(Expr):
    value: bool = False


@record
class NoneLit(Expr):
    pass


@record
class Name(Expr):
    id: str = ""


@record
class InputRef(Expr):
    """`in` (a block's or network's input tensor); `input` is a synonym."""

    keyword: str = field(default="in", compare=False)


@record
class ListExpr(Expr):
    items: tuple[Expr, ...] = ()


@record
class TupleExpr(Expr):
    """`(p2, p3, p4)`: several tensors a network returns, in order."""

    items: tuple[Expr, ...] = ()


@record
class RecordExpr(Expr):
    """`{out: y, aux: z}`: tensors a network returns by name."""

    items: tuple[Field, ...] = ()


@record
class Comprehension(Expr):
    """`[elt for var in iterable if cond]`."""

    elt: Expr
    var: str
    iterable: Expr
    cond: Expr | None = None


@record
class Chain(Expr):
    """`a -> b -> c`: feed each element's output to the next."""

    elements: tuple[Expr, ...] = ()


@record
class Labeled(Expr):
    """`label: value` inside a chain; the label becomes the module name."""

    label: str
    value: Expr
    label_span: Span = _span()


@record
class Kwarg:
    name: str
    value: Expr
    span: Span = _span()


@record
class Field:
    """`out: y` in a record; the key is a label or a number."""

    key: str
    value: Expr
    span: Span = _span()
    key_span: Span = _span()


@record
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()


@record
class Index(Expr):
    value: Expr
    index: Expr


@record
class Attr(Expr):
    """`value.name`, e.g. `in.channels`."""

    value: Expr
    name: str = ""
    name_span: Span = _span()


@record
class BinOp(Expr):
    """Arithmetic, comparison and boolean operators; `op` is the symbol as written (`+`, `and`)."""

    op: str
    left: Expr
    right: Expr
    op_span: Span = _span()


@record
class UnaryOp(Expr):
    op: str  # `-` or `not`
    operand: Expr


@record
class If(Expr):
    cond: Expr
    then: Expr
    else_: Expr


@record
class Choice(Expr):
    """`choice(a, b, …, name = "k")`: a decision left to the search."""

    options: tuple[Expr, ...] = ()
    kwargs: tuple[Kwarg, ...] = ()


# -- statements and definitions ------------------------------------------------------------


@record
class Param:
    name: str
    default: Expr | None = None
    span: Span = _span()


@record
class Let:
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@record
class Return:
    value: Expr
    span: Span = _span()


@record
class InputDecl:
    """`input [3, 224, 224]` in a network: the shape of one sample (no batch). A network with several
    inputs names each, `input image [3, 224, 224]`; `name` is None for the unnamed one."""

    value: Expr
    span: Span = _span()
    name: str | None = None
    name_span: Span = _span()


@record
class Assert:
    cond: Expr
    message: str | None = None
    span: Span = _span()


Stmt = Let | Return | InputDecl | Assert


@record
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()
    name_span: Span = _span()


@record
class NetworkDef:
    """`network N(params) { … }`; `params` is None when written without parentheses."""

    name: str
    params: tuple[Param, ...] | None
    body: tuple[Stmt, ...]
    span: Span = _span()
    name_span: Span = _span()


@record
class LabelPath:
    """`layer4.2.conv3`: a module path written in a derived network."""

    parts: tuple[str, ...]
    span: Span = _span()

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@record
class Replacement:
    """`fc: Linear(37)` inside `with { … }`: the layer labelled `fc` becomes `Linear(37)`."""

    path: LabelPath
    value: Expr
    span: Span = _span()


@record
class Decision:
    """`"stage1.0.k": 5` inside `decide { … }`: the decision `stage1.0.k` takes the option `5`."""

    name: String
    value: Expr
    span: Span = _span()


@record
class Derive:
    """One clause after a network alias: `with { … }`, `freeze until P`, `freeze P, Q`, `cut after P`,
    `decide { "k": 5, … }`."""

    kind: str  # with | freeze_until | freeze | cut_after | decide
    replacements: tuple[Replacement, ...] = ()
    paths: tuple[LabelPath, ...] = ()
    span: Span = _span()
    decisions: tuple[Decision, ...] = ()


@record
class NetworkAlias:
    """`network resnet152 = ResNet([3, 8, 36, 3])`, or a derived network:
    `network pets = resnet50 with { fc: Linear(37) } freeze until layer4`."""

    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()
    derive: tuple[Derive, ...] = ()


@record
class BlockAlias:
    """`block Inception2014 = Inception(unit = ConvReLU, k5 = 5)`: a block with some arguments fixed."""

    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@record
class Import:
    path: str
    span: Span = _span()


Item = Import | BlockDef | NetworkDef | NetworkAlias | BlockAlias | Let


@record
class Comment:
    text: str
    span: Span = _span()


@record
class Module:
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    span: Span = _span()
