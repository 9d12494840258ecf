"""The public Python API behind `cnnc.*` (imported lazily by `cnnc/__init__.py`).

Text in, graph or numbers out; torch is imported only by the functions that build modules.
"""

from __future__ import annotations

# Loading, resolving and elaborating live in the rooms below; the API re-exports them under the same names.
from cnnc.compiler.frontend import check_lint, elaborate_file
from cnnc.dsl.diagnostics import CnncError, Diagnostic, InternalError
from cnnc.dsl.programs import (
    is_file,
    load_program,
    parse_arg_values,
    resolve_path,
    zoo_dir,
    zoo_suggestion,
)

__all__ = [
    "CnncError", "InternalError", "check_lint", "compile_source", "diagram", "elaborate_file", "graph",
    "is_file", "load", "load_program", "optimized", "parse_arg_values", "render", "resolve_path", "summary",
    "with_weights", "zoo_dir", "zoo_suggestion",
]


def graph(path, network=None, args=None, input_shape=None, decider=None, text=None, allow_import=()):
    """The shaped graph of a network; raises `CnncError` if the program has errors.

    `allow_import` names directories of shared blocks that imports may also reach."""
    result = elaborate_file(path, network, args, input_shape, decider, text, allow_import)
    errors: list[Diagnostic] = [d for d in result.diagnostics if d.is_error]
    if errors:
        raise CnncError(*errors)
    return result.graph


def summary(path, network=None, args=None, input=None, dtype="float32"):
    """The analysis of a network (`cnnc summary`'s figures): params, MACs, activations and one row
    per layer; `.to_json()` gives the JSON contract. Runs no model and never imports torch."""
    from cnnc.compiler.analysis.summary import summarize

    return summarize(graph(path, network, _arg_exprs(args), _shape(input)), dtype)


def render(path_or_graph, network=None, depth=None, direction="TB", theme="light", args=None,
           input_shape=None, **options):
    """A `graphviz.Digraph` of a network (from a .cnn path, a zoo name or a `Graph`); runs no program.

    `args` binds a parameterised network's arguments, as `load` takes them. A program with shape
    errors is drawn up to the failure (marked in red); syntax errors raise `CnncError`. `options` go to `compiler.render.dot.render` (`fold`, `shapes`). Write an image with
    `digraph.render(...)` / `.pipe(format="svg")`, or `compiler.render.dot.write(digraph, "x.png")`.
    """
    from cnnc.compiler.ir import Graph
    from cnnc.compiler.render.dot import render as draw

    graph = path_or_graph
    if not isinstance(graph, Graph):
        result = elaborate_file(path_or_graph, network, _arg_exprs(args), input_shape)
        if result.graph is None:
            raise CnncError(*[d for d in result.diagnostics if d.is_error])
        graph = result.graph
    return draw(graph, depth=depth, direction=direction, theme=theme, **options)


def _svg(g) -> str:
    return diagram(g, depth=1)._repr_svg_()


def _plug_diagrams() -> None:
    """Graphs and compiled models show their diagrams in Jupyter (see `compiler.ir.DIAGRAM_HOOK`)."""
    from cnnc.compiler import ir

    ir.DIAGRAM_HOOK = _svg


def diagram(path_or_graph, network=None, depth=None, **options):
    """`render`'s diagram wrapped for notebooks: shows itself as SVG; `.save("x.png")` writes a file."""
    from cnnc.compiler.render.dot import Diagram

    return Diagram(render(path_or_graph, network, depth, **options))


# ---------------------------------------------------------------------------------------------
# Lowering to PyTorch (torch is imported only here, inside the functions)


def load(path, network=None, input=None, seed=None, args=None, allow_import=(), weights=None, strict=True,
         optimize=None):
    """The network as a `torch.nn.Module`: a torch.fx GraphModule with one straight-line forward.

    `input` overrides the declared input shape (`(3, 256, 256)`); `args` binds a parameterised
    network's arguments (`{"towers": 2}`, or `["towers=2"]` as on the command line); `seed` makes
    the weights reproducible; `allow_import` names directories outside the file's own tree that
    its imports may reach (as `--allow-import`). Module names are the program's labels, so
    state_dict keys are `layer1.0.conv1.weight`. The module keeps its IR (`model.cnnc_graph`) and analysis
    (`model.cnnc_summary()`); raises `CnncError` when the program has errors.

    `weights` loads a checkpoint (a state_dict in .pt/.pth, read with `weights_only=True`, or
    .safetensors) by key; `strict=False` loads what matches and keeps the rest newly initialised.
    `weights={"body": "r50.pth"}` loads a checkpoint into the part labelled `body` (its keys are
    the part's own; keys the part lacks, like a classifier's `fc.*`, are skipped and reported).
    What happened is in `model.cnnc_weights` (a `WeightReport`, or for a mapping a dict of them by
    label; see `compiler.lower.weights`).

    `optimize="inference"` returns the model rewritten to run inference faster, after the weights
    are loaded: eval mode, frozen, BatchNorm folded into the preceding convolution, Dropout and
    Identity dropped, channels_last (see `compiler.lower.optimize`).

    `path` may be a run folder (`cnnc train --out RUN`): its program, network, arguments, input and
    weights are used unless given here, and `model.cnnc_run` (a `search.runs.Run`) holds the rest of
    its record: the preprocessing (resize, mean, std) and the class names. Nothing is printed.
    """
    _check_optimize(optimize)
    run = _run(path)
    if run is not None:
        path, network = run.program, network or run.network
        args = args if args is not None else list(run.args)
        input = input if input is not None else run.input
        weights = weights if weights is not None else run.weights
    model = _lower(graph(path, network, _arg_exprs(args), _shape(input), allow_import=allow_import), seed)
    model = model if weights is None else with_weights(model, weights, strict)
    model = optimized(model, optimize)
    if run is not None:
        model.cnnc_run = run
    return model


def _run(path):
    """The run folder's record where `path` is one (a folder with run.json), else None."""
    from cnnc.search.runs import is_run, read_run

    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        return None
    return read_run(path) if is_run(path) else None


OPTIMIZE = ("inference",)  # the values of `optimize=` and `cnnc compile --optimize`


def _check_optimize(optimize) -> None:
    if optimize is not None and optimize not in OPTIMIZE:
        raise ValueError(f"`optimize` must be None or \"inference\", but got {optimize!r}")


def optimized(model, optimize):
    """`model`, or its rewrite for `optimize` ("inference"); a loaded weight report is kept."""
    if optimize is None:
        return model
    from cnnc.compiler.lower.optimize import for_inference

    fast = for_inference(model)
    if hasattr(model, "cnnc_weights"):
        fast.cnnc_weights = model.cnnc_weights
    return fast


def with_weights(model, weights, strict: bool = True):
    """Load a checkpoint into a compiled module, or `{label: checkpoint}` into its parts; the report
    (a dict of them by label, for a mapping) is kept as `model.cnnc_weights`."""
    from collections.abc import Mapping

    from cnnc.compiler.lower.weights import load_weights

    if isinstance(weights, Mapping):
        model.cnnc_weights = {str(label): load_weights(model, path, strict=strict, into=str(label))
                              for label, path in weights.items()}
    else:
        model.cnnc_weights = load_weights(model, weights, strict=strict)
    return model


def compile_source(text, network=None, input=None, seed=None, args=None, path="<source>.cnn",
                   optimize=None):
    """`load` for .cnn text instead of a file; imports resolve relative to `path`, then the zoo."""
    _check_optimize(optimize)
    return optimized(_lower(graph(path, network, _arg_exprs(args), _shape(input), text=text), seed), optimize)


def _lower(g, seed):
    from cnnc.compiler.lower.fx import to_graph_module

    check_lint(g)
    return to_graph_module(g, seed=seed)


def _shape(input) -> tuple[int, ...] | dict | None:
    """`input=(3, 256, 256)`, or `{"image": (3, 256, 256), …}` for a network with named inputs."""
    if isinstance(input, dict):
        return {str(k): tuple(v) for k, v in input.items()}
    return None if input is None else tuple(input)


def _arg_exprs(args) -> dict | None:
    """Python values (or `name=value` strings) → the AST expressions elaboration binds."""
    if args is None:
        return None
    if isinstance(args, dict):
        args = [f"{name}={_cnn_literal(value)}" for name, value in args.items()]
    return parse_arg_values(args)


def _cnn_literal(value) -> str:
    """A Python value written in .cnn syntax: True → `true`, [3, 4] → `[3, 4]`, "M" → `"M"`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cnn_literal(v) for v in value) + "]"
    kind = type(value).__name__
    raise TypeError(f"a network argument must be a number, bool, string or list, but got {kind}")


_plug_diagrams()
