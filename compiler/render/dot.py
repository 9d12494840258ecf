"""Graph → diagram: a `graphviz.Digraph` (DOT text), and images through Graphviz's `dot` program.

`render(graph, …)` is pure: it decides a `View` (see `view.py`) and writes it as DOT; it runs nothing.
`write(digraph, path)` writes `.dot`/`.gv` text itself and runs `dot` only for `.svg`, `.png` and
`.pdf`; where `dot` is missing it raises `DotNotFound`, whose `help` says how to install it.

Graphviz's layout grows faster than the diagram (a 1,000-way concat takes seconds, a 5,000-way one
crashes `dot`), so an image is drawn only from a view Graphviz lays out in seconds: `render(…,
bound="image")` raises `TooLarge` beyond `MAX_IMAGE_BOXES` boxes, `MAX_IMAGE_EDGES` edges,
`MAX_IMAGE_FAN` edges at one box or `MAX_IMAGE_CLUSTERS` clusters, naming the `--depth` that fits;
`bound="text"` refuses DOT text beyond `MAX_TEXT_BOXES` (no program could draw it, and writing it
takes seconds). `dot` itself runs at most `DOT_SECONDS`; a crash, a failure or a timeout is
`DotFailed`. All three are `DrawError`s with a help.

What a diagram shows: one node per layer (`Conv 3×3/2, 64`, its label and parameters), each edge
marked with the producer's output shape (`64×56×56`), fills by op family, merges as small circles
(⊕ add, ⊗ mul, ‖ concat), scopes as nested clusters titled `layer2.0: Bottleneck(128, stride = 2)`,
collapsed scopes as one box with their shapes, parameters and MACs. A failed shape inference is drawn
in red: the failing node with its headline and the edges entering it; downstream nodes dashed grey.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import graphviz

from cnnc.compiler.ir import Graph, Node, format_node
from cnnc.compiler.render.labels import (
    MERGE_GLYPHS,
    clip,
    display_name,
    html,
    human,
    op_label,
    range_name,
    shown_name,
    wrap,
)
from cnnc.compiler.render.theme import THEMES, Theme
from cnnc.compiler.render.view import Box, Edge, View, build_view
from cnnc.compiler.types import is_error
from cnnc.dsl import safefs
from cnnc.dsl.records import record

FORMATS = {
    ".dot": None,
    ".gv": None,
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
}  # suffix → dot -T
DIRECTIONS = ("TB", "LR")
SHAPE_MODES = ("changes", "all")
OUTPUT_KEY = "output"  # the sink drawn after the graph's output; box keys are `n…` or `s_…`
INSTALL_HELP = (
    "install Graphviz (`apt-get install graphviz`, `brew install graphviz` or "
    "`conda install graphviz`), or write DOT text instead with `-o FILE.dot`"
)


# Measured with Graphviz 2.43 (CPU seconds of `dot -Tsvg`): the zoo's largest diagram,
# inception_resnet_v2 (822 boxes, 307 clusters), 0.6 s; 400 residual blocks (1,200 boxes, 400
# clusters) 2.2 s, 700 of them 7.3 s, 1,500 over a minute; a 1,000-way concat 1.4 s, 5,000 crashes.
MAX_IMAGE_BOXES = 1_500
MAX_IMAGE_EDGES = 3_000
MAX_IMAGE_CLUSTERS = 500
MAX_IMAGE_FAN = 500  # edges into or out of one box
MAX_TEXT_BOXES = 20_000  # DOT text: ~1 s to write; Graphviz would take hours to lay it out
DOT_SECONDS = 60  # what `dot` may take before it is stopped


class DrawError(Exception):
    """A diagram that cannot be drawn as asked; `help` says what to do instead."""

    def __init__(self, message: str, help: str):
        super().__init__(message)
        self.help = help


class DotNotFound(DrawError):
    """An image was asked for, but Graphviz's `dot` program is not on PATH."""

    def __init__(self, fmt: str):
        super().__init__(
            f"writing a .{fmt} image needs Graphviz's `dot` program, but it is not on PATH",
            INSTALL_HELP,
        )


class DotFailed(DrawError):
    """`dot` crashed, failed or ran out of time on the diagram."""


class TooLarge(DrawError):
    """The view is larger than Graphviz lays out in seconds."""


def render(
    graph: Graph,
    depth: int | None = None,
    direction: str = "TB",
    theme: str = "light",
    fold: bool = True,
    shapes: str = "changes",
    bound: str | None = None,
) -> graphviz.Digraph:
    """The diagram of `graph`: scopes deeper than `depth` collapsed, runs of identical blocks ×N.

    `shapes="changes"` labels the edges where a shape is new (it leaves an op that changes it, a
    collapsed box, or a cluster); `"all"` labels every edge. Every edge carries its shape as a tooltip.
    With `bound` ("image" or "text"), a view too large for it raises `TooLarge` before anything is
    drawn (see the module docstring).
    """
    if shapes not in SHAPE_MODES:
        raise ValueError(f"`shapes` must be one of {SHAPE_MODES}, but got {shapes!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"`direction` must be one of {DIRECTIONS}, but got {direction!r}")
    if theme not in THEMES:
        raise ValueError(f"`theme` must be one of {tuple(THEMES)}, but got {theme!r}")
    if depth is not None and depth < 0:
        raise ValueError(f"`depth` must be 0 or more (or None for everything), but got {depth}")
    if bound is not None and depth is None and len(graph) > _box_bound(bound):
        _refuse(
            graph, None, fold, bound, _over(len(graph), _box_bound(bound), "boxes")
        )  # a box a node
    view = build_view(graph, depth, fold)
    if bound is not None:
        check_drawable(view, fold, bound)
    return draw(view, THEMES[theme], direction, shapes)


def size_problem(view: View, bound: str = "image") -> str | None:
    """What makes the view too large for `bound` ("image": Graphviz's layout; "text"), or None."""
    if bound == "text":
        return _over(len(view.boxes), MAX_TEXT_BOXES, "boxes")
    fan: dict[str, int] = {}
    for edge in view.edges:
        fan[edge.src] = fan.get(edge.src, 0) + 1
        fan[edge.dst] = fan.get(edge.dst, 0) + 1
    return (
        _over(len(view.boxes), MAX_IMAGE_BOXES, "boxes")
        or _over(len(view.edges), MAX_IMAGE_EDGES, "edges")
        or _over(len(view.clusters), MAX_IMAGE_CLUSTERS, "nested blocks")
        or _over(max(fan.values(), default=0), MAX_IMAGE_FAN, "edges at one box")
    )


def _over(count: int, bound: int, what: str) -> str | None:
    return f"{count:,} {what}, more than the {bound:,}" if count > bound else None


def _box_bound(bound: str) -> int:
    return MAX_TEXT_BOXES if bound == "text" else MAX_IMAGE_BOXES


def check_drawable(view: View, fold: bool = True, bound: str = "image") -> None:
    """`TooLarge` when the view is too large for `bound`, naming the deepest `--depth` that fits."""
    problem = size_problem(view, bound)
    if problem is not None:
        _refuse(view.graph, view.depth, fold, bound, problem)


def _refuse(graph: Graph, depth: int | None, fold: bool, bound: str, problem: str):
    fits = _deepest_fitting(graph, depth, fold, bound)
    what = "at this depth" if depth is not None else "drawn layer by layer"
    where = "Graphviz lays out in seconds" if bound == "image" else "a diagram can show"
    help = (
        f"collapse the blocks: `--depth {fits}` draws it within bounds"
        if fits is not None
        else "no depth makes it small enough"
        + (": write DOT text instead with `-o FILE.dot`" if bound == "image" else "")
    )
    raise TooLarge(f"the diagram {what} has {problem} {where}", help)


def _deepest_fitting(graph: Graph, below: int | None, fold: bool, bound: str) -> int | None:
    """The largest depth (below `below`) whose view fits, trying from 0 up: views grow with the
    depth, so each try is one view, and a graph without blocks needs none."""
    nesting = max((len(path) for path in graph.scopes), default=0)
    top = nesting if below is None else min(nesting, below)
    fits = None
    for depth in range(top):
        if size_problem(build_view(graph, depth, fold), bound) is not None:
            break
        fits = depth
    return fits


def to_dot(graph: Graph, **options) -> str:
    """DOT text of `render(graph, **options)`."""
    return render(graph, **options).source


# -- drawing ----------------------------------------------------------------------------------


def draw(
    view: View, theme: Theme, direction: str = "TB", shapes: str = "changes"
) -> graphviz.Digraph:
    """View → Digraph: clusters nested as the scopes nest, then edges, then the output sink.

    Linear in the boxes and clusters: each level finds its boxes and child clusters in maps made once
    (no scan of every cluster per cluster)."""
    g = graphviz.Digraph(
        view.graph.network,
        graph_attr=_graph_attrs(view, theme, direction),
        node_attr=_node_defaults(theme),
        edge_attr=_edge_defaults(theme),
    )
    drawing = _Drawing(
        view,
        theme,
        _group(view.boxes, lambda b: b.parent),
        _children(view.clusters),
        _frozen_clusters(view.graph, view.clusters),
    )
    _draw_level(g, drawing, (), level=0)
    for edge in view.edges:
        g.edge(
            edge.src, edge.dst, **_edge_attrs(edge, theme, quiet=edge.quiet and shapes == "changes")
        )
    if view.outputs:
        _draw_outputs(g, view, theme)
    return g


@record(slots=False)
class _Drawing:
    """The view with what drawing it needs, each looked up by a cluster's path."""

    view: View
    theme: Theme
    boxes: dict[tuple, list[Box]]  # cluster path → the boxes drawn directly in it
    children: dict[tuple, list[tuple]]  # cluster path → its child clusters, in order of appearance
    frozen: frozenset[tuple]  # clusters whose layers are all frozen


def _group(items, key) -> dict:
    out: dict = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def _children(clusters) -> dict[tuple, list[tuple]]:
    return _group(clusters, lambda child: clusters[child])


def _draw_level(g, at: _Drawing, path: tuple, level: int) -> None:
    """Draw the boxes and clusters inside `path`; `level` counts the filled clusters around them."""
    for box in at.boxes.get(path, ()):
        g.node(box.key, **_box_attrs(box, at.view.graph, at.theme))
    for child in at.children.get(path, ()):
        # a fresh Digraph, not `with g.subgraph(name=…)`: that copies the whole body drawn so far
        # into each new cluster (and drops it again), which made drawing quadratic in the clusters
        sub = graphviz.Digraph(name="cluster_" + ".".join(child))
        sub.attr(**_cluster_attrs(at.view, child, at.theme, level, child in at.frozen))
        filled = at.view.graph.scopes[child].kind != "seq"
        _draw_level(sub, at, child, level + filled)
        g.subgraph(sub)


def _draw_outputs(g, view: View, theme: Theme) -> None:
    """A sink after each output, so that its shape sits on an edge like every other: `output` for a
    network's one tensor, else `output_0`, `output_1`, … labelled with the key (`out`, `output 0`)
    and the shape."""
    (key, node_id, box), *more = view.outputs
    if key is None and not more:
        _draw_sink(g, view, theme, OUTPUT_KEY, box, node_id, "<<B>output</B>>")
        return
    for i, (key, node_id, box) in enumerate(view.outputs):
        name = f"output {key}" if isinstance(key, int) else str(key)
        _draw_sink(
            g,
            view,
            theme,
            f"{OUTPUT_KEY}_{i}",
            box,
            node_id,
            _io_label(name, view.graph.node(node_id).type, theme),
        )


def _draw_sink(g, view: View, theme: Theme, sink: str, box: str, node_id: int, label: str) -> None:
    out = view.graph.node(node_id)
    g.node(sink, label=label, fillcolor=theme.fill("io"))
    known = not is_error(out.type)
    edge = Edge(box, sink, out.type.short(), "ok" if known else "unknown")
    g.edge(edge.src, edge.dst, **_edge_attrs(edge, theme))


def _io_label(name: str, type_, theme: Theme) -> str:
    """A named input's or output's label: the name in bold, its shape small (`?` when unknown)."""
    shape = "?" if is_error(type_) else type_.short()
    return _html_label([f"<B>{html(name)}</B>"], [html(shape)], None, theme)


# -- attributes -------------------------------------------------------------------------------


def _graph_attrs(view: View, theme: Theme, direction: str) -> dict:
    return {
        "rankdir": direction,
        "bgcolor": theme.background,
        "fontname": theme.font,
        "fontcolor": theme.text,
        "fontsize": "13",
        "label": _title(view),
        "labelloc": "t",
        "labeljust": "l",
        "nodesep": "0.25",
        "ranksep": "0.3",
        "newrank": "true",
        "tooltip": view.graph.network,
    }


def _node_defaults(theme: Theme) -> dict:
    return {
        "fontname": theme.font,
        "fontsize": "11",
        "fontcolor": theme.text,
        "color": theme.line,
        "shape": "box",
        "style": "rounded,filled",
        "height": "0.3",
        "margin": "0.1,0.04",
    }


def _edge_defaults(theme: Theme) -> dict:
    return {
        "fontname": theme.font,
        "fontsize": "9",
        "fontcolor": theme.muted,
        "color": theme.edge,
        "arrowsize": "0.6",
    }


def _title(view: View) -> str:
    total_params = sum(b.params for b in view.boxes)
    total_macs = sum(b.macs for b in view.boxes)
    text = f"<B>{html(view.graph.network)}</B>   {human(total_params)} params · {human(total_macs)} MACs"
    failing = view.graph.first_error()
    if failing is not None:
        text += f" · shape error at {html(failing.name)}"
    return f"<{text}>"


def _box_attrs(box: Box, graph: Graph, theme: Theme) -> dict:
    if box.scope is not None:
        attrs = _scope_box_attrs(box, graph, theme)
    else:
        attrs = _node_attrs(graph.node(box.members[0]), box.params, theme)
    if box.error is not None:
        attrs.update(color=theme.error, fillcolor=theme.error_fill, penwidth="2")
    elif box.poisoned:
        attrs.update(color=theme.unknown, fontcolor=theme.unknown, style=_dashed(attrs))
    elif frozen(graph, box.members) and attrs.get("label", "").endswith(">"):
        attrs.update(
            color=FROZEN,
            penwidth="2",
            label=attrs["label"][:-1] + _FROZEN_MARK + ">",
            tooltip=attrs.get("tooltip", "") + " (frozen)",
        )
    return attrs


FROZEN = "#3b7dd8"  # a derived network's frozen parts: a blue frame and a snowflake
_FROZEN_MARK = f'<BR/><FONT POINT-SIZE="9" COLOR="{FROZEN}">❄ frozen</FONT>'


def frozen(graph: Graph, ids) -> bool:
    """Are the modules among these nodes all frozen (`network … freeze …`)? False when none is."""
    paths = [graph.node(i).path for i in ids if graph.node(i).spec.layer]
    return bool(graph.frozen) and bool(paths) and all(p in graph.frozen for p in paths)


def _frozen_clusters(graph: Graph, clusters) -> frozenset[tuple]:
    """The clusters whose modules are all frozen (`frozen` of the nodes under each), in one pass over
    the nodes: each layer counts towards the clusters among its path's prefixes."""
    if not graph.frozen:
        return frozenset()
    layers: dict[tuple, int] = {}
    thawed: set[tuple] = set()
    for node in graph.nodes_in_order():
        if node.spec.layer:
            for k in range(1, len(node.path) + 1):
                prefix = node.path[:k]
                if prefix in clusters:
                    layers[prefix] = layers.get(prefix, 0) + 1
                    if node.path not in graph.frozen:
                        thawed.add(prefix)
    return frozenset(p for p in layers if p not in thawed)


def _dashed(attrs: dict) -> str:
    return attrs.get("style", "rounded,filled").replace("filled", "dashed")


def _node_attrs(node: Node, params: int, theme: Theme) -> dict:
    tooltip = format_node(node)
    if node.op in MERGE_GLYPHS:
        return _merge_attrs(node, theme, tooltip)
    if node.op == "Input":  # one of several inputs is drawn with its name and shape
        name = node.args.get("name")
        label = "<<B>input</B>>" if name is None else _io_label(name, node.type, theme)
        return {"label": label, "fillcolor": theme.fill("io"), "tooltip": tooltip}
    small = " · ".join(
        x for x in (shown_name(node), f"{human(params)} params" if params else "") if x
    )
    return {
        "label": _html_label([_op_line(node)], [html(small)], node.error, theme),
        "fillcolor": theme.fill(node.spec.family),
        "tooltip": tooltip,
    }


def _op_line(node: Node) -> str:
    """`<B>Conv</B> 3×3/2, 64`: the op's name in bold, its attributes plain."""
    text = op_label(node)
    cut = min((i for i in (text.find(" "), text.find(",")) if i >= 0), default=len(text))
    return f"<B>{html(text[:cut])}</B>{html(text[cut:])}"


def _merge_attrs(node: Node, theme: Theme, tooltip: str) -> dict:
    attrs = {
        "label": MERGE_GLYPHS[node.op],
        "shape": "circle",
        "style": "filled",
        "fixedsize": "true",
        "width": "0.32",
        "fontsize": "15",
        "fillcolor": theme.fill("merge"),
        "tooltip": tooltip,
    }
    if node.error is not None:
        attrs.update(
            shape="box",
            style="rounded,filled",
            fixedsize="false",
            fontsize="11",
            label=_html_label([f"<B>{html(MERGE_GLYPHS[node.op])}</B>"], [], node.error, theme),
        )
    return attrs


def _scope_box_attrs(box: Box, graph: Graph, theme: Theme) -> dict:
    name = range_name(box.names) if box.repeat > 1 else display_name(box.scope.path, box.parent)
    title = f"<B>{html(name)}</B>: {html(clip(_scope_title(box, graph)))}"
    if box.repeat > 1:
        title += f"  <B>×{box.repeat}</B>"
    shapes = f"{html(' + '.join(box.in_shapes) or '·')} → {html(box.out_shape)}"
    return {
        "label": _html_label([title, shapes], [_counts(box)], box.error, theme),
        "fillcolor": theme.block_fill,
        "tooltip": clip(f"{_names(box.names)}: {box.scope.title}", TIP),
    }


TIP = 1_000  # characters of a tooltip: Graphviz refuses a quoted string of ~16 KB


def _names(names: tuple[str, ...]) -> str:
    """The folded boxes' names, or their range when listing them would not fit a tooltip."""
    listed = ", ".join(names)
    return listed if len(listed) <= TIP // 2 else range_name(names)


def _scope_title(box: Box, graph: Graph) -> str:
    """A block's call (`Bottleneck(128, stride = 2)`); for a sequence, what it holds."""
    if box.scope.kind != "seq":
        return box.scope.title
    return seq_contents(graph, box.scope.path, box.members)


def seq_contents(graph: Graph, path: tuple, members) -> str:
    """`Conv → BatchNorm → ReLU6` for a short run of ops, `4 × InvertedResidual` for repeated blocks."""
    items = []
    for node_id in members:
        node = graph.node(node_id)
        child = node.path[: len(path) + 1]
        scope = graph.scopes.get(child) if len(node.path) > len(path) + 1 else None
        items.append((child, scope.title.partition("(")[0] if scope else node.op))
    names = list(dict(items).values())  # one name per child, in order
    if len(set(names)) == 1 and len(names) > 1:
        return f"{len(names)} × {names[0]}"
    return " → ".join(names) if len(names) <= 4 else f"{len(names)} layers"


def _counts(box: Box) -> str:
    each = " each" if box.repeat > 1 else ""
    n = box.repeat
    return f"{human(box.params // n)} params · {human(box.macs // n)} MACs{each}"


def _html_label(lines: list[str], small: list[str], error: str | None, theme: Theme) -> str:
    """An HTML-like label: main lines, then small muted ones, then an error headline in red."""
    parts = list(lines)
    parts += [f'<FONT POINT-SIZE="9" COLOR="{theme.muted}">{s}</FONT>' for s in small if s]
    if error is not None:
        parts += [
            f'<FONT POINT-SIZE="9" COLOR="{theme.error}">{html(x)}</FONT>' for x in wrap(error)
        ]
    return "<" + "<BR/>".join(parts) + ">"


def _edge_attrs(edge: Edge, theme: Theme, quiet: bool = False) -> dict:
    attrs = {"label": "" if quiet or edge.role == "unknown" else edge.shape, "tooltip": edge.shape}
    if edge.role == "error":
        attrs.update(color=theme.error, fontcolor=theme.error, penwidth="1.8")
    elif edge.role == "unknown":
        attrs.update(color=theme.unknown, fontcolor=theme.unknown, style="dashed")
    return attrs


def _cluster_attrs(view: View, path: tuple, theme: Theme, level: int, is_frozen: bool) -> dict:
    scope = view.graph.scopes[path]
    name = html(display_name(path, view.clusters[path]))
    label = (
        f"<<B>{name}</B>>" if scope.kind == "seq" else f"<<B>{name}</B>: {html(clip(scope.title))}>"
    )
    attrs = {
        "label": label,
        "labeljust": "l",
        "fontsize": "11",
        "fontcolor": theme.text,
        "color": theme.cluster_line,
        "style": "rounded,filled",
        "fillcolor": theme.cluster_fill(level),
        "tooltip": f"{'.'.join(path)}: {scope.title}",
    }
    if (
        scope.kind == "seq"
    ):  # a light frame, in its parent's colour: sequences only name a run of layers
        parent_fill = theme.cluster_fill(level - 1) if level else theme.background
        attrs.update(style="rounded,dashed,filled", fillcolor=parent_fill)
    failing = view.graph.first_error()
    if failing is not None and failing.path[: len(path)] == path:
        attrs.update(color=theme.error, penwidth="1.5")
    elif is_frozen:
        attrs.update(
            color=FROZEN,
            penwidth="2",
            label=attrs["label"][:-1] + f' <FONT COLOR="{FROZEN}">❄ frozen</FONT>>',
        )
    return attrs


# -- files and images -------------------------------------------------------------------------


def image(digraph: graphviz.Digraph, fmt: str, seconds: float | None = None) -> bytes:
    """Run `dot -T<fmt>` on the diagram: `DotNotFound` when Graphviz is not installed, `DotFailed`
    when it crashes, fails or takes longer than `seconds` (`DOT_SECONDS`)."""
    seconds = DOT_SECONDS if seconds is None else seconds
    program = shutil.which(digraph.engine)
    if program is None:
        raise DotNotFound(fmt)
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=digraph.source.encode("utf-8"),
            capture_output=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DotFailed(
            f"Graphviz's `dot` did not finish the .{fmt} image within {seconds:g} s", DEPTH_HELP
        ) from None
    except OSError as exc:
        raise DotFailed(
            f"Graphviz's `dot` could not be run: {exc.strerror or exc}", INSTALL_HELP
        ) from None
    if done.returncode != 0:
        raise DotFailed(
            f"Graphviz's `dot` {_failure(done.returncode)} on the .{fmt} image"
            + _last_line(done.stderr),
            DEPTH_HELP,
        )
    return done.stdout


DEPTH_HELP = (
    "draw fewer boxes with `--depth K` (0 draws the stages), or write DOT text with `-o FILE.dot`"
)


def _failure(code: int) -> str:
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"failed (exit status {code})"


def _last_line(stderr: bytes) -> str:
    """`: ` and the last line `dot` wrote to stderr, escaped and cut, or nothing."""
    from cnnc.dsl.diagnostics import printable

    lines = [
        line for line in stderr[-4096:].decode("utf-8", "replace").splitlines() if line.strip()
    ]
    return f": {printable(lines[-1].strip(), 200)}" if lines else ""


def write(digraph: graphviz.Digraph, path: str | Path) -> Path:
    """Write DOT text (`.dot`, `.gv`) or an image (`.svg`, `.png`, `.pdf`) chosen by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"the output must end in one of {', '.join(FORMATS)}, but got `{path.name}`"
        )
    fmt = FORMATS[suffix]
    if fmt is None:
        safefs.write_text(path, digraph.source)
    else:
        safefs.write_bytes(path, image(digraph, fmt))
    return path


@record(eq=False, slots=False)
class Diagram:
    """A rendered network for notebooks: shows itself as SVG; `save` writes a file."""

    digraph: graphviz.Digraph

    @property
    def source(self) -> str:
        return self.digraph.source

    def _repr_svg_(self) -> str:
        return image(self.digraph, "svg").decode("utf-8")

    def save(self, path: str | Path) -> Path:
        return write(self.digraph, path)
