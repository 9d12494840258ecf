"""Benchmark (not a test): elaboration and analysis are linear in the number of nodes.

Three synthetic programs of about 1k, 10k and 100k layers each — a flat chain written out
(`in -> ReLU -> ReLU -> …`, the numbering `relu_1`, `relu_2`, … of one scope), a deep stack of
residual blocks and a wide concat of 1×1 convolutions — are parsed once, then elaborated, checked
(diagnostics, `Graph.lint`) and summarised. Printed per program: the node count, the wall and
CPU seconds of elaboration + analysis, the CPU microseconds and the peak bytes (tracemalloc, a
second run) per node, and the ratio of each per-node figure to the 1k program's. Goal: both ratios
stay within 2× up to 100k. CPU time is the figure compared: on a shared machine the wall clock
measures the other processes too. Parsing is shown apart (the grammar's room, not elaboration's).

A second table times rendering to DOT text (`to_dot`, every node drawn and every scope a cluster)
of the same programs: CPU microseconds per node and the ratio to the 1k program's, same goal.

    python bench/scaling.py [--sizes 1000,10000,100000] [--dot 1000,10000,100000] [--fx 1000,10000]

`--dot` defaults to `--sizes` (`--dot ""` skips the table); `--fx` also times lowering to a torch.fx
module at the given sizes.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.elaborate import elaborate
from cnnc.dsl.imports import load


def chain(n: int) -> str:
    return "network N {\n    input [3, 8, 8]\n    return in" + " -> ReLU" * n + "\n}\n"


def residual(n: int) -> str:
    """n layers as n/3 blocks of Conv, ReLU and `+`."""
    return (
        "block Res {\n    return (in -> Conv(8, 3, pad = 1) -> ReLU) + in\n}\n"
        f"network N {{\n    input [8, 8, 8]\n    return in -> [Res for i in range({n // 3})]\n}}\n"
    )


def concat(n: int) -> str:
    """n 1×1 convolutions side by side, joined by one concat."""
    return (
        "network N {\n    input [3, 4, 4]\n"
        f"    return concat([in -> Conv(1, 1) for i in range({n})])\n}}\n"
    )


PROGRAMS = {"chain": chain, "residual": residual, "concat": concat}


def parse(text: str, name: str):
    """The program from text: nothing is written to disk."""
    return load(name, text=text)


def work(program) -> int:
    """Elaborate, check and analyse; returns the node count."""
    result = elaborate(program)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error][:3]
    assert not result.graph.lint()
    summarize(result.graph)
    return len(result.graph)


def measure(program) -> tuple[int, float, float, int]:
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    nodes = work(program)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.collect()
    tracemalloc.start()
    work(program)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return nodes, seconds, cpu, peak


def dot_seconds(program) -> tuple[int, float, float]:
    """(nodes, wall, CPU seconds) of rendering the elaborated program to DOT text."""
    from cnnc.compiler.render.dot import to_dot

    graph = elaborate(program).graph
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    to_dot(graph)
    return len(graph), time.perf_counter() - start, time.process_time() - cpu


def fx_seconds(program) -> float:
    """Seconds to lower to an fx GraphModule (torch imported beforehand)."""
    from cnnc.compiler.lower.fx import to_graph_module

    graph = elaborate(program).graph
    start = time.perf_counter()
    to_graph_module(graph)
    return time.perf_counter() - start


def sizes_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument(
        "--dot", default=None, help="sizes at which to time DOT rendering (default: --sizes)"
    )
    parser.add_argument("--fx", default="", help="sizes at which to time lowering to torch.fx too")
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    opts = parser.parse_args()
    programs = opts.programs.split(",")
    elaboration(programs, sizes_of(opts.sizes))
    rendering(programs, sizes_of(opts.sizes if opts.dot is None else opts.dot))
    for n in sizes_of(opts.fx):
        for name in programs:
            fx = fx_seconds(parse(PROGRAMS[name](n), f"cnnc_scaling_{name}_{n}.cnn"))
            print(f"{name:<9} {n:>7} fx {fx:.2f} s ({fx / n * 1e6:.1f} µs/layer)", flush=True)


def elaboration(programs: list[str], sizes: list[int]) -> None:
    print(
        f"{'program':<9} {'layers':>7} {'nodes':>7} {'parse s':>8} {'wall s':>7} {'cpu s':>6} {'µs/node':>8} "
        f"{'B/node':>7} {'time ×':>7} {'mem ×':>6}"
    )
    for name in programs:
        base = None
        for n in sizes:
            start = time.perf_counter()
            program = parse(PROGRAMS[name](n), f"cnnc_scaling_{name}_{n}.cnn")
            parse_s = time.perf_counter() - start
            nodes, seconds, cpu, peak = measure(program)
            per = (cpu / nodes * 1e6, peak / nodes)
            base = base or per
            print(
                f"{name:<9} {n:>7} {nodes:>7} {parse_s:>8.2f} {seconds:>7.2f} {cpu:>6.2f} {per[0]:>8.1f} {per[1]:>7.0f} "
                f"{per[0] / base[0]:>7.2f} {per[1] / base[1]:>6.2f}",
                flush=True,
            )


def rendering(programs: list[str], sizes: list[int]) -> None:
    if not sizes:
        return
    print(
        f"\nDOT rendering\n{'program':<9} {'layers':>7} {'nodes':>7} {'wall s':>7} {'cpu s':>6} "
        f"{'µs/node':>8} {'time ×':>7}"
    )
    for name in programs:
        base = None
        for n in sizes:
            nodes, seconds, cpu = dot_seconds(
                parse(PROGRAMS[name](n), f"cnnc_scaling_{name}_{n}.cnn")
            )
            per = cpu / nodes * 1e6
            base = base or per
            print(
                f"{name:<9} {n:>7} {nodes:>7} {seconds:>7.2f} {cpu:>6.2f} {per:>8.1f} {per / base:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
