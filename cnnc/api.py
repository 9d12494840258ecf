"""The public Python API behind `cnnc.*` (imported lazily by `cnnc/__init__.py`).

Text in, graph or numbers out; torch is imported only by the functions that build modules. One
keyword per idea across the functions: `network=` picks a network of the file, `args=` binds a
parameterised network's arguments, `input=` overrides the input shape, `text=` gives the program
as text instead of a file, `allow_import=` widens where imports may reach. Program errors raise
`CnncError`, whose `str()` is the rendered diagnostic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Loading, resolving and elaborating live in the rooms below; the API re-exports them under the same
# names (`elaborate_file` hands its graph a renderer for notebooks: see its docstring).
from cnnc.compiler import frontend
from cnnc.compiler.frontend import check_lint
from cnnc.dsl.diagnostics import CnncError, Diagnostic, InternalError
from cnnc.dsl.literals import write_literal
from cnnc.dsl.programs import (
    is_file,
    load_program,
    parse_arg_values,
    resolve_path,
    zoo_dir,
    zoo_suggestion,
)
from cnnc.dsl.records import replace

TYPE_CHECKING = False  # typing's own, without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    import graphviz
    import torch

    from cnnc.compiler.analysis.summary import Summary
    from cnnc.compiler.ir import Graph
    from cnnc.compiler.render.dot import Diagram

    Path = str | os.PathLike
    # `{"towers": 2}` (Python values), `["towers=2"]` (.cnn syntax, as `--arg`), or parsed expressions
    Args = Mapping[str, Any] | Sequence[str] | None
    # `(3, 256, 256)`, or `{"image": (3, 256, 256), …}` for a network with named inputs
    Input = Sequence[int] | Mapping[str, Sequence[int]] | None

__all__ = [
    "CnncError",
    "InternalError",
    "check",
    "check_lint",
    "compile_source",
    "diagram",
    "elaborate_file",
    "graph",
    "is_file",
    "load",
    "load_program",
    "optimized",
    "parse_arg_values",
    "render",
    "resolve_path",
    "summary",
    "with_weights",
    "zoo_dir",
    "zoo_suggestion",
]

SOURCE_PATH = (
    "<source>.cnn"  # the name of a program given as text (imports resolve beside it, then the zoo)
)


def elaborate_file(
    path, network=None, args=None, input_shape=None, decider=None, text=None, allow_import=()
):
    """Parse and elaborate (`cnnc.compiler.frontend.elaborate_file`): an `Elaboration`, graph and
    diagnostics; the graph shows itself in notebooks as its diagram (depth 1)."""
    result = frontend.elaborate_file(path, network, args, input_shape, decider, text, allow_import)
    if result.graph is None:
        return result
    return replace(result, graph=result.graph.drawn_by(_svg))


def graph(
    path: Path | None = None,
    network: str | None = None,
    args: Args = None,
    input: Input = None,
    decider=None,
    text: str | None = None,
    allow_import: Iterable[Path] = (),
    *,
    input_shape: Input = None,
) -> Graph:
    """The shaped graph of a network (`cnnc check`'s work); raises `CnncError` if the program has errors.

    `path` is a .cnn file or a zoo model's name (`"resnet18"`); `text=` gives the program itself
    (then `path`, if given, names it for messages and imports). `allow_import` names directories of
    shared blocks that imports may also reach. `input_shape=` is the old name of `input=`."""
    input = _renamed_input(input, input_shape, "graph")
    path = _source_path(path, text)
    result = elaborate_file(
        path, network, _arg_exprs(args), _shape(input), decider, text, allow_import
    )
    errors: list[Diagnostic] = [d for d in result.diagnostics if d.is_error]
    if errors:
        raise CnncError(*errors)
    return result.graph


def check(
    path: Path | None = None,
    network: str | None = None,
    args: Args = None,
    input: Input = None,
    text: str | None = None,
    allow_import: Iterable[Path] = (),
) -> list[Diagnostic]:
    """Every diagnostic of a network (`cnnc check`'s): errors and warnings, sorted by place; an empty
    list when the network is clean. Unlike `graph`, it raises nothing for the program's errors.
    `print(cnnc.CnncError(*found))` shows them as the CLI does."""
    from cnnc.dsl.diagnostics import dedupe

    try:
        result = elaborate_file(
            _source_path(path, text),
            network,
            _arg_exprs(args),
            _shape(input),
            None,
            text,
            allow_import,
        )
    except CnncError as exc:
        return sorted(dedupe(exc.diagnostics), key=Diagnostic.sort_key)
    return sorted(dedupe(result.diagnostics), key=Diagnostic.sort_key)


def summary(
    source: Path | Graph | torch.nn.Module | None = None,
    network: str | None = None,
    args: Args = None,
    input: Input = None,
    dtype: str = "float32",
    batch: int = 1,
    text: str | None = None,
    allow_import: Iterable[Path] = (),
) -> Summary:
    """The analysis of a network (`cnnc summary`'s figures): params, MACs, activations and one row
    per layer. `print()` shows `cnnc summary`'s table, `.to_dict()` gives its JSON form. Runs no
    model and never imports torch.

    `source` is a .cnn path or zoo name (or `text=` the program), a graph from `cnnc.graph`, or a
    module from `cnnc.load` (summarised from the graph it keeps, without parsing again). `batch`
    scales MACs and activations to a batch of that many samples."""
    from cnnc.compiler.analysis.summary import summarize

    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"`batch` must be a whole number of 1 or more, but got {batch!r}")
    built = _built_graph(source)
    if built is not None:
        _only_source(network=network, args=args, input=input, text=text)
        return summarize(built, dtype, batch)
    return summarize(
        graph(source, network, args, input, text=text, allow_import=allow_import), dtype, batch
    )


def _built_graph(source) -> Graph | None:
    """The graph of a `Graph` or of a module `cnnc.load` built; None for a path."""
    from cnnc.compiler.ir import Graph

    if isinstance(source, Graph):
        return source
    kept = getattr(source, "cnnc_graph", None)
    if isinstance(kept, Graph):
        return kept
    if source is None or isinstance(source, (str, os.PathLike)):
        return None
    kind = type(source).__name__
    raise TypeError(
        f"`source` must be a .cnn path or zoo name, a graph from cnnc.graph or a module from "
        f"cnnc.load, but got {kind}"
    )


def _only_source(**given) -> None:
    """A graph is summarised as it was built: the options that build one do not apply."""
    extra = [name for name, value in given.items() if value is not None]
    if extra:
        names = ", ".join(f"`{name}`" for name in extra)
        raise TypeError(
            f"{names} apply to a path or program text; a graph or module is summarised as it "
            "was built (pass them to cnnc.graph or cnnc.load instead)"
        )


def _source_path(path: Path | None, text: str | None) -> Path:
    if path is None and text is None:
        raise TypeError("give a .cnn path or zoo name, or the program as `text=`")
    return SOURCE_PATH if path is None else path


def _renamed_input(input: Input, input_shape: Input, where: str) -> Input:
    """`input_shape=` (the old keyword) still works, with a DeprecationWarning."""
    if input_shape is None:
        return input
    import warnings

    warnings.warn(
        f"cnnc.{where}(input_shape=…) is now cnnc.{where}(input=…)",
        DeprecationWarning,
        stacklevel=3,
    )
    if input is not None:
        raise TypeError(f"cnnc.{where} got both `input` and its old name `input_shape`")
    return input_shape


def render(
    path_or_graph: Path | Graph,
    network: str | None = None,
    depth: int | None = None,
    direction: str = "TB",
    theme: str = "light",
    args: Args = None,
    input: Input = None,
    **options,
) -> graphviz.Digraph:
    """A `graphviz.Digraph` of a network (from a .cnn path, a zoo name or a `Graph`); runs no program.

    `args` binds a parameterised network's arguments, as `load` takes them. A program with shape
    errors is drawn up to the failure (marked in red); syntax errors raise `CnncError`. `options` go
    to `compiler.render.dot.render` (`fold`, `shapes`). Write an image with `digraph.render(...)` /
    `.pipe(format="svg")`, or `compiler.render.dot.write(digraph, "x.png")`.
    """
    from cnnc.compiler.ir import Graph
    from cnnc.compiler.render.dot import render as draw

    input = _renamed_input(input, options.pop("input_shape", None), "render")
    graph = path_or_graph
    if not isinstance(graph, Graph):
        result = elaborate_file(path_or_graph, network, _arg_exprs(args), _shape(input))
        if result.graph is None:
            raise CnncError(*[d for d in result.diagnostics if d.is_error])
        graph = result.graph
    return draw(graph, depth=depth, direction=direction, theme=theme, **options)


def _svg(g) -> str:
    return diagram(g, depth=1)._repr_svg_()


def diagram(
    path_or_graph: Path | Graph, network: str | None = None, depth: int | None = None, **options
) -> Diagram:
    """`render`'s diagram wrapped for notebooks: shows itself as SVG; `.save("x.png")` writes a file."""
    from cnnc.compiler.render.dot import Diagram

    return Diagram(render(path_or_graph, network, depth, **options))


# ---------------------------------------------------------------------------------------------
# Lowering to PyTorch (torch is imported only here, inside the functions)


def load(
    path: Path | None = None,
    network: str | None = None,
    input: Input = None,
    seed: int | None = None,
    args: Args = None,
    allow_import: Iterable[Path] = (),
    weights: Path | Mapping[str, Path] | None = None,
    strict: bool = True,
    optimize: str | None = None,
    text: str | None = None,
    supernet: bool = False,
) -> torch.nn.Module:
    """The network as a `torch.nn.Module`: a torch.fx GraphModule with one straight-line forward.

    `path` is a .cnn file or a zoo model's name; `text=` gives the program itself (imports resolve
    beside `path`, if given, then in the zoo). `input` overrides the declared input shape
    (`(3, 256, 256)`); `args` binds a parameterised network's arguments (`{"towers": 2}`, or
    `["towers=2"]` as on the command line); `seed` makes the weights reproducible; `allow_import`
    names directories outside the file's own tree that its imports may reach (as `--allow-import`).
    Module names are the program's labels, so state_dict keys are `layer1.0.conv1.weight`. The
    module keeps its IR (`model.cnnc_graph`, which `cnnc.summary(model)` reads) and analysis
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
    weights are used unless given here, and `model.cnnc_run` (a `training.runs.Run`) holds the rest of
    its record: the preprocessing (resize, mean, std) and the class names. Nothing is printed.

    `supernet=True` lowers a search space (a file with `choice(…)`) to one module holding every
    member's layers, weights shared by label path and layer, width choices by slicing
    (`compiler.lower.supernet.Supernet`): `model.set_member({"width": "16", …})` picks the member
    its forward runs, or `model(x, member={…})`; `model.member_state_dict({…})` is that member's
    own weights. `weights` and `optimize` do not apply to it.
    """
    _check_optimize(optimize)
    if supernet:
        return _supernet(path, network, input, seed, args, allow_import, text, weights, optimize)
    run = _run(path) if text is None else None
    if run is not None:
        path, network = run.program, network or run.network
        args = args if args is not None else list(run.args)
        input = input if input is not None else run.input
        weights = weights if weights is not None else run.weights
    model = _lower(graph(path, network, args, input, text=text, allow_import=allow_import), seed)
    model = model if weights is None else with_weights(model, weights, strict)
    model = optimized(model, optimize)
    if run is not None:
        model.cnnc_run = run
    return model


def _supernet(path, network, input, seed, args, allow_import, text, weights, optimize):
    """`load(…, supernet=True)`: the space's supernet (`search.evaluators.supernet.build`)."""
    from cnnc.search.evaluators.supernet import build
    from cnnc.search.space import load_space

    if weights is not None or optimize is not None:
        raise ValueError("`weights` and `optimize` do not apply to a supernet (supernet=True)")
    path = _source_path(path, text)
    space = load_space(
        resolve_path(path) if text is None else path,
        network,
        _arg_exprs(args),
        _shape(input),
        text=text,
        allow_import=allow_import,
    )
    return build(space, seed)[0]


def _run(path):
    """The run folder's record where `path` is one (a folder with run.json), else None."""
    from cnnc.training.runs import is_run, read_run

    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        return None
    return read_run(path) if is_run(path) else None


OPTIMIZE = ("inference",)  # the values of `optimize=` and `cnnc compile --optimize`


def _check_optimize(optimize) -> None:
    if optimize is not None and optimize not in OPTIMIZE:
        raise ValueError(f'`optimize` must be None or "inference", but got {optimize!r}')


def optimized(model: torch.nn.Module, optimize: str | None) -> torch.nn.Module:
    """`model`, or its rewrite for `optimize` ("inference"); a loaded weight report is kept."""
    if optimize is None:
        return model
    from cnnc.compiler.lower.optimize import for_inference

    fast = for_inference(model)
    if hasattr(model, "cnnc_weights"):
        fast.cnnc_weights = model.cnnc_weights
    return fast


def with_weights(model: torch.nn.Module, weights, strict: bool = True) -> torch.nn.Module:
    """Load a checkpoint into a compiled module, or `{label: checkpoint}` into its parts; the report
    (a dict of them by label, for a mapping) is kept as `model.cnnc_weights`."""
    from cnnc.compiler.lower.weights import load_weights

    if isinstance(weights, Mapping):
        model.cnnc_weights = {
            str(label): load_weights(model, path, strict=strict, into=str(label))
            for label, path in weights.items()
        }
    else:
        model.cnnc_weights = load_weights(model, weights, strict=strict)
    return model


def compile_source(
    text: str,
    network: str | None = None,
    input: Input = None,
    seed: int | None = None,
    args: Args = None,
    path: Path = SOURCE_PATH,
    optimize: str | None = None,
) -> torch.nn.Module:
    """`load(path, text=text)`: a module from .cnn text; imports resolve relative to `path`, then the zoo."""
    return load(path, network, input, seed, args, optimize=optimize, text=text)


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
    """Python values (or `name=value` strings) → the AST expressions elaboration binds; expressions
    already parsed (`parse_arg_values`) pass as they are."""
    from cnnc.dsl.ast import Expr

    if args is None:
        return None
    if isinstance(args, Mapping) and all(isinstance(v, Expr) for v in args.values()):
        return dict(args)
    if isinstance(args, str):
        raise TypeError(
            f'`args` takes a dict or a list of "name=value" strings, but got the string {args!r}'
        )
    if isinstance(args, Mapping):
        args = [f"{name}={write_literal(value)}" for name, value in args.items()]
    return parse_arg_values(args)
