"""Benchmark: the supernet's sandwich rule over the whole space (the evaluator's) or over the widths
of each drawn member, against stand-alone training of every member of `zoo/spaces/tiny.cnn`.

    .venv/bin/python bench/sandwich.py [--seeds 5] [--truth-seeds 2]

The truth: every member of tiny.cnn (36) trained from scratch as `--evaluator train` trains it
(the search's defaults: 2 epochs, SGD, lr 0.05, batch 64, one thread, digits), once per seed of
`--truth-seeds`, its accuracy the mean over them; the τ between two of those trainings is the
agreement any scorer can hope for. Then, per span and per seed of `--seeds`, the supernet built and
trained as `--evaluator supernet` does, the sandwich's ends chosen
- `space` (the evaluator's rule, `supernet.sandwich`): the largest and the smallest member of the
  whole space by parameters, the same two at every step;
- `layout`: the largest and the smallest member of the drawn member's layout (its layers at other
  widths, weightless ones included: `Layouts`), so that only the dimension the store slices is
  sandwiched and every other decision follows the draw;
and every member scored with the weights it inherits. Per row: Kendall's τ of the scores against
the truth, the top-1 regret (the truth's best minus the truth of the member the scores rank
first), the median score (how well the shared weights serve a member at all), the passes that ran
each option of `pool` (a decision without weights), and the CPU seconds of training.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
sys.path.insert(0, str(ROOT / "bench" / "nas"))

import regret  # noqa: E402  (bench/nas/regret.py: Kendall's τ as the search reports it)


class Layouts:
    """The ends of the `layout` span: per member, the largest and the smallest member (by
    parameters) of its layout, its network with every weighted layer as its slot (path, class,
    keywords: `supernet.slot_of`) and every other node as it is, so members of one layout differ
    only in their widths."""

    def __init__(self, members: list):
        from cnnc.compiler.analysis.summary import summarize
        from cnnc.compiler.lower.supernet import weighted_layers

        groups: dict[tuple, list] = {}
        for m in members:
            groups.setdefault(layout(m.graph), []).append(m)
        self.ends: dict[int, tuple] = {}
        for group in groups.values():
            widths = {id(m): [layer.args for _, layer in weighted_layers(m.graph)] for m in group}
            ordered = sorted(group, key=lambda m: summarize(m.graph, fields=False).params)
            if len(group) > 1:
                self.ends.update((id(m), (ordered[-1], ordered[0])) for m in group)
            assert len({repr(w) for w in widths.values()}) == len(group), "one layout, one width"

    def around(self, drawn: list) -> list:
        """Each drawn member's ends, then the member, each path once."""
        paths = []
        for member in drawn:
            for m in (*self.ends.get(id(member), ()), member):
                if all(m is not p for p in paths):
                    paths.append(m)
        return paths


def layout(graph) -> tuple:
    from cnnc.compiler.lower import modules
    from cnnc.compiler.lower.supernet import slot_of, tensor_shapes
    from cnnc.compiler.ops import Lowering

    key = []
    for node in graph.nodes_in_order():
        layer = modules.layer(graph, node) if modules.kind(node) is Lowering.MODULE else None
        if layer is not None and tensor_shapes(layer):
            key.append((slot_of(node, layer), node.inputs))
        else:
            key.append((node.path, node.op, repr(sorted(node.args.items())), node.inputs))
    return tuple(key)


SPANS = ("space", "layout")


def settings_for(seed: int, evaluator: str):
    from cnnc.search.driver import Settings

    return Settings(file=str(TINY), evaluator=evaluator, seed=seed, device="cpu")


def members_of():
    from cnnc.search.evaluators.cover import covered
    from cnnc.search.space import load_space

    return covered(load_space(TINY))


def truth(members, data, seeds: int) -> list[list[float]]:
    """Per seed, every member's stand-alone accuracy (in `members`' order)."""
    from cnnc.search.evaluate import train_evaluator

    runs = []
    for seed in range(seeds):
        evaluate = train_evaluator(settings_for(seed, "train"), data)
        runs.append([evaluate(m.graph, None).score for m in members])
        print(f"  truth, seed {seed}: trained {len(members)} members", file=sys.stderr)
    return runs


def one_shot(span: str, seed: int, members, data) -> tuple[list[float], float, dict]:
    """Scores of `members` by the supernet trained with `span`'s ends and `seed`, the CPU seconds
    of its training, and the passes per option of `pool`."""
    from cnnc.search.evaluators import supernet

    saved, counts = (supernet.sandwich, supernet.drawing), collections.Counter()

    def counted(draw):
        def step(rng):
            paths = draw(rng)
            counts.update(pool_of(m) for m in paths)
            return paths

        return step

    if span == "layout":  # no fixed ends: each step's ends follow its draw

        def drawing(covered, rule):
            draw, ends = saved[1](covered, rule), Layouts(covered)
            return counted(lambda rng: ends.around(draw(rng)))

        supernet.sandwich, supernet.drawing = (lambda members: ()), drawing
    else:
        supernet.drawing = lambda covered, rule: counted(saved[1](covered, rule))
    try:
        start = time.process_time()
        evaluate = supernet.supernet_evaluator(settings_for(seed, "supernet"), data)
        seconds = time.process_time() - start
        scores = [evaluate(m.graph, None).score for m in members]
    finally:
        supernet.sandwich, supernet.drawing = saved
    if span == "space":  # the same two ends at every step
        steps = evaluate.training.steps
        for end in supernet.sandwich(members):
            counts[pool_of(end)] += steps
    return scores, seconds, counts


def pool_of(member) -> str:
    return next(str(i) for name, i in member.picks if name == "pool")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--truth-seeds", type=int, default=2)
    opts = p.parse_args(argv)
    torch.set_num_threads(1)
    from cnnc.training.data import load_dataset

    data = load_dataset("digits", None, 0)
    members = members_of()
    runs = truth(members, data, opts.truth_seeds)
    mean = [statistics.fmean(column) for column in zip(*runs)]
    best = max(mean)
    print(f"tiny.cnn: {len(members)} members, truth the mean of {opts.truth_seeds} trainings")
    if len(runs) > 1:
        print(
            f"  τ between two trainings (the ceiling): {regret.kendall_tau(runs[0], runs[1]):.2f}"
        )
    lines = [["span", "seed", "Kendall τ", "top-1 regret", "median score", "pool passes", "CPU s"]]
    for span in SPANS:
        taus = []
        for seed in range(opts.seeds):
            scores, seconds, counts = one_shot(span, seed, members, data)
            taus.append(regret.kendall_tau(scores, mean))
            first = max(range(len(members)), key=lambda i: scores[i])
            lines.append(
                [
                    span,
                    str(seed),
                    f"{taus[-1]:.2f}",
                    regret.pp(best - mean[first]),
                    f"{statistics.median(scores):.3f}",
                    f"{counts['0']} / {counts['1']}",
                    f"{seconds:.2f}",
                ]
            )
            print("  ".join(lines[-1]), file=sys.stderr, flush=True)
        lines.append([span, "mean", f"{statistics.fmean(taus):.2f}", "", "", "", ""])
    print(f"  truth's median: {statistics.median(mean):.3f}, best {best:.3f}")
    print(regret.layout(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
