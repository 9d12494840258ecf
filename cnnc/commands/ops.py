"""`cnnc ops`: the op reference, generated from the registry (`compiler/ops/`), nothing by hand.

`cnnc ops` lists every op with its one-line summary, grouped by family; `cnnc ops NAME` prints the
op's page: its call with defaults, each parameter's default, values and torch's name beside it, what
is inferred from the input, the shape rule, the parameter and MAC counts, the receptive field, an
example. `cnnc explain NAME` prints the same page.
"""

from __future__ import annotations

import difflib

from cnnc.commands import common

HELP = "list the ops a .cnn file can use, or show one op's page: `cnnc ops Conv`"
DESCRIPTION = """\
List every op with a one-line summary, grouped by family; with an op's name, print its page:
parameters with defaults, ranges and torch's names, the shape rule, what is inferred from the
input, the parameter and MAC counts, the receptive field, and an example.

examples:
  cnnc ops
  cnnc ops Conv
  cnnc ops Upsample
"""


def configure(p) -> None:
    p.add_argument("op", nargs="?", help="an op's name (omit to list them all)")


def run(args) -> int:
    if args.op is None:
        print(listing())
        return common.OK
    spec = find(args.op)
    if spec is None:
        raise common.UsageError(unknown(args.op))
    print(page(spec))
    return common.OK


def find(name: str):
    """The op spelled `name` (an alias, or any letter case, will do), or None."""
    from cnnc.compiler.ops import REGISTRY, lookup

    spec = lookup(name)
    if spec is None:
        spec = next((s for s in REGISTRY.values() if s.name.lower() == name.lower()), None)
    return spec


def unknown(name: str) -> str:
    """`no op `Conv2d`; did you mean `Conv`?` (or how to list them)."""
    from cnnc.compiler.ops import REGISTRY

    names = [n for s in REGISTRY.values() for n in (s.name, *s.aliases)]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), [n.lower() for n in names], n=1, cutoff=0.5
    )
    if close:
        match = next(n for n in names if n.lower() == close[0].lower())
        return f"no op `{name}`; did you mean `{match}`?"
    return f"no op `{name}`; `cnnc ops` lists them"


def listing() -> str:
    """Every op, one line each, under its family's title."""
    from cnnc.compiler.ops import FAMILY_TITLES, REGISTRY, Family

    width = max(len(s.name) for s in REGISTRY.values())
    lines = []
    for family in Family:
        specs = sorted((s for s in REGISTRY.values() if s.family is family), key=lambda s: s.name)
        if not specs:
            continue
        lines += ["" if lines else None, f"{FAMILY_TITLES[family]}:"]
        lines += [f"  {s.name:<{width}}  {s.doc}" for s in specs]
    lines += ["", "`cnnc ops NAME` shows an op's parameters, shape rule, counts and an example."]
    return "\n".join(line for line in lines if line is not None)


def page(spec) -> str:
    """The reference page of one op."""
    sections = [f"{spec.name}: {spec.doc}", "", f"  {signature(spec)}", ""]
    if spec.aliases:
        sections[0] += f" (also {', '.join(f'`{a}`' for a in spec.aliases)})"
    sections += parameter_lines(spec)
    if spec.inferred:
        from cnnc.compiler.elaborate.coerce import INFERRED

        sections.append(
            f"inferred: `{spec.inferred}` = {INFERRED.get(spec.inferred, 'from the input')}"
        )
    sections += [
        f"shape:    {spec.shape_rule}",
        f"params:   {spec.params_rule}",
        f"MACs:     {spec.macs_rule}",
        f"RF:       {rf_text(spec)}",
        f"torch:    {torch_text(spec)}",
        "",
        "example:",
        f"  {example_line(spec)}",
    ]
    return "\n".join(sections)


def signature(spec) -> str:
    """`Conv(out_channels, kernel_size, stride = 1, …)`; merges and the input as they are written."""
    if not spec.layer:
        return spec.example
    from cnnc.compiler.ops import REQUIRED
    from cnnc.compiler.ops.text import literal

    parts = [
        p.name if p.default is REQUIRED else f"{p.name} = {literal(p.default)}" for p in spec.params
    ]
    return f"{spec.name}({', '.join(parts)})" if parts else spec.name


def parameter_lines(spec) -> list[str]:
    if not spec.params:
        return ["parameters: none", ""]
    from cnnc.compiler.ops import REQUIRED
    from cnnc.compiler.ops.text import literal, range_text

    rows = []
    for p in spec.params:
        default = "required" if p.default is REQUIRED else literal(p.default)
        values = p.kind.value if not p.choices else " | ".join(f'"{c}"' for c in p.choices)
        bound = range_text(p)
        rows.append((p.name, default, values + (f", {bound}" if bound else ""), p.torch_name))
    widths = [
        max(len(r[i]) for r in rows + [("parameter", "default", "values", "torch")])
        for i in range(3)
    ]
    head = ("parameter", "default", "values", "torch")
    lines = ["  " + "  ".join(f"{c:<{w}}" for c, w in zip(head, widths)) + f"  {head[3]}"]
    lines += ["  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) + f"  {r[3]}" for r in rows]
    k = spec.positional
    if k is not None:
        lines.append(
            f"  (all by name: cnnc infers `{spec.inferred}`, torch's first argument)"
            if k == 0
            else f"  (the first {k} by position, the rest by name: cnnc infers `{spec.inferred}`)"
        )
    return ["parameters:", *lines, ""]


def rf_text(spec) -> str:
    from cnnc.compiler.ops import RFRule

    if isinstance(spec.rf, RFRule):
        return spec.rf.value
    doc = (spec.rf.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.split()) if doc else "a window: the kernel, stride and padding above"


def torch_text(spec) -> str:
    from cnnc.compiler.ops import Lowering

    if spec.lowering is Lowering.INPUT:
        return "an argument of forward"
    if spec.lowering is Lowering.MERGE:
        return f"`{spec.torch_ctor}` on the inputs"
    if spec.lowering is Lowering.PARAMETER:
        return "an nn.Parameter of the enclosing module, multiplied in"
    ctor = spec.torch_ctor.replace("cnnc.compiler.lower.layers.", "cnnc's ")
    if spec.tensor_params and spec.arity > 1 and spec.tensor_params[0].default is None:
        return f"{ctor}; given `like`, cnnc's Resize, whose forward takes (x, like)"
    return ctor + (" (forward takes x, then `like`)" if spec.tensor_params else "")


def example_line(spec) -> str:
    """The example in a statement: `y = x -> Conv(64, 3)`; merges and inputs as written."""
    if spec.layer:
        return f"y = x -> {spec.example}"
    if spec.example.startswith("input"):
        return spec.example
    return f"y = {spec.example}"
