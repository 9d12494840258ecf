"""How well can any scorer rank the table? Its members retrained with another seed, against it.

    .venv/bin/python bench/nas/ceiling.py [--seed 1] [--sample 60] [--top 40]

Retrains, as `build.py` trained the table (`build.train_one`: the `train` evaluator, 3 epochs,
one thread) but with weights and shuffling seeded by `--seed`, a seeded uniform sample of
`--sample` members and the table's `--top` best; writes them to `--out` (the table's format,
`table.dump`) and goes on from that file when it exists. Then prints Kendall's τ against the table:
- of the second training, over the uniform sample (the rank agreement two trainings of one recipe
  reach: no scorer of 3-epoch accuracy can expect more) and over the table's top members (the
  ranking that matters to a search's first picks);
- of the parameter count, of the MACs and of the count of edges that are not skips (a cell's
  coarse make-up), over the same members and over all of them;
- and the top-1 regret of the member the second training ranks best among the retrained ones (a
  perfect predictor of a second training's accuracy picks it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import regret
import table


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    _, members = table.read(opts.table)
    ranked = sorted(members, key=lambda k: -members[k].accuracy)
    sample = random.Random(opts.sample_seed).sample(sorted(members), opts.sample)
    top = ranked[: opts.top]
    again = retrain(sorted(set(sample) | set(top)), opts)
    print(
        f"seed {opts.seed}, {opts.epochs} epochs, against the table's seed 0, 3 epochs "
        f"({len(again)} members retrained)\n"
    )
    scores = scores_of(opts.scores)
    print(tau_table(members, again, sample, top, scores))
    print(f"\nagainst the second training, over the uniform sample ({len(sample)})\n")
    print(second_table(members, again, sample, scores))
    print()
    print(pick_line(members, again, ranked[0]))
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seed", type=int, default=1, help="the second training's weights and shuffling"
    )
    p.add_argument("--epochs", type=int, default=3, help="the second training's (the table's: 3)")
    p.add_argument("--sample", type=int, default=60, help="members drawn uniformly")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--top", type=int, default=40, help="the table's best members, retrained too")
    p.add_argument("--table", default=str(table.TABLE))
    p.add_argument("--out", default=str(table.HERE / "seed1.json"))
    p.add_argument(
        "--scores",
        nargs="*",
        default=[],
        help="JSON files {key: score} of every member (run.py --scores): a column each",
    )
    return p.parse_args(argv)


def retrain(keys: list[str], opts) -> dict[str, table.Entry]:
    """{key: Entry} of `keys` trained with `opts.seed`, read from `opts.out` where done there."""
    import build
    import torch

    from cnnc.dsl import safefs
    from cnnc.search import driver
    from cnnc.search.evaluate import train_evaluator
    from cnnc.training.data import load_dataset

    out = Path(opts.out)
    done = previous(out, opts)
    todo = [k for k in keys if k not in done]
    if todo:
        torch.set_num_threads(1)
        graphs = dict(table.space_members())
        data = load_dataset("digits", None, 0)
        settings = driver.Settings(
            file=str(table.SPACE), epochs=opts.epochs, seed=opts.seed, device="cpu"
        )
        evaluate = train_evaluator(settings, data)
        meta = {"command": "bench/nas/ceiling.py", "seed": opts.seed, "epochs": opts.epochs}
        for n, key in enumerate(todo, 1):
            done[key] = build.train_one(graphs[key], evaluate)
            safefs.write_text(out, table.dump(meta, done))
            print(f"{n}/{len(todo)} {key} {done[key].accuracy:.4f}", file=sys.stderr)
    return {k: done[k] for k in keys}


def previous(out: Path, opts) -> dict[str, table.Entry]:
    """The members `out` already holds, when it was trained with this seed and these epochs;
    SystemExit when it was not (its results would be mixed with others)."""
    if not out.is_file():
        return {}
    meta, done = table.read(out)
    if (meta.get("seed"), meta.get("epochs")) != (opts.seed, opts.epochs):
        raise SystemExit(
            f"{out} holds seed {meta.get('seed')}, {meta.get('epochs')} epochs: give another --out"
        )
    return done


def tau(members, keys, score) -> str:
    value = regret.kendall_tau([score(k) for k in keys], [members[k].accuracy for k in keys])
    return f"{value:.3f}"


def scorers_of(members, scores: dict) -> dict:
    """{name: key -> score}: params, MACs, the count of edges that are not skips, each file."""
    return {
        "params": lambda k: members[k].params,
        "MACs": lambda k: members[k].macs,
        "fewer skips": lambda k: -k.count("skip_connect"),
        **{name: by_key.__getitem__ for name, by_key in scores.items()},
    }


def second_table(members, again, sample, scores: dict) -> str:
    """τ of the table and of each scorer against the second training, over the sample."""
    scorers = {"table": lambda k: members[k].accuracy, **scorers_of(members, scores)}
    return regret.layout([list(scorers), [tau(again, sample, s) for s in scorers.values()]])


def scores_of(paths: list[str]) -> dict[str, dict[str, float]]:
    """{file stem: {key: score}} of each scores file."""
    return {Path(p).stem: json.loads(Path(p).read_text(encoding="utf-8")) for p in paths}


def tau_table(members, again, sample, top, scores: dict) -> str:
    """τ against the table of the second training, params, MACs, the count of edges that are not
    skips and each scores file, over each set of members."""
    sets = {
        f"uniform sample ({len(sample)})": sample,
        f"table's top {len(top)}": top,
        f"table's top {len(top) // 2}": top[: len(top) // 2],
        f"all ({len(members)})": sorted(members),
    }
    scorers = {
        "second training": lambda k: again[k].accuracy,
        **scorers_of(members, scores),
    }
    lines = [["members", *scorers]]
    for name, keys in sets.items():
        row = [name]
        for scorer_name, score in scorers.items():
            known = scorer_name != "second training" or all(k in again for k in keys)
            row.append(tau(members, keys, score) if known else "—")
        lines.append(row)
    return regret.layout(lines)


def pick_line(members, again, best_key) -> str:
    """The regret of the second training's best member, and the mean gap between the two."""
    pick = max(again, key=lambda k: again[k].accuracy)
    gap = sum(abs(again[k].accuracy - members[k].accuracy) for k in again) / len(again)
    best = members[best_key].accuracy
    return (
        f"the second training's best of these: {pick} ({100 * again[pick].accuracy:.2f} %), "
        f"{regret.pp(best - members[pick].accuracy)} pp from the table's best; "
        f"mean |difference| {100 * gap:.2f} pp"
    )


if __name__ == "__main__":
    sys.exit(main())
