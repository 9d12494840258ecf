"""The search's named choices, one table each: evaluators (`--evaluator`), samplers (`--sampler`)
and data-set kinds (`--data KIND[:PATH]`).

Contract: a name is what the user types; its entry holds what the code needs (the function that
makes or loads it, as `module:function` under `cnnc.search` or named in full, imported only on
use) and its help text. The command line's choices and help are generated from these tables, and
the code that dispatches on a name reads the same entry, so a new choice is one entry here (and its
function).
`tests/test_tables.py` holds every entry to its contract. This module imports nothing heavy: the
command line reads it to build its parsers.
"""

from __future__ import annotations

import importlib

from cnnc.dsl.records import record


@record
class Entry:
    """A named choice: `target` is `module:function` under `cnnc.search` (or a module named in full,
    `cnnc.training.data:load_digits_kind`), imported by `load`."""

    target: str
    help: str

    def load(self):
        module, _, name = self.target.partition(":")
        full = module if module.startswith("cnnc.") else f"cnnc.search.{module}"
        return getattr(importlib.import_module(full), name)


@record
class Evaluator(Entry):
    """`load()` is `(settings, data) -> Evaluator`; `trains`: its score is a validation accuracy
    after training (else an untrained member's proxy score); `one_shot`: that accuracy is with
    weights shared by every member, trained once (`--retrain-top` checks it)."""

    trains: bool = True
    one_shot: bool = False


@record
class Sampler(Entry):
    """`load()` is `(settings, space, seed) -> optuna sampler`, seeded by `seed` alone."""


@record
class DataKind(Entry):
    """`load()` is `(path, side) -> raw images`; `path`: what follows `KIND:` (`DIR` or `FILE`), or
    "" for a kind that takes none; `pixel_max`: the largest pixel value of its images, when known
    (recorded with a trained run's preprocessing); `augment`: `cnnc train` crops and flips its
    images by default; `imagenet`: `cnnc train` normalises them with ImageNet's statistics by
    default (photos, for weights trained on ImageNet); `classes`: `module:function`, `(path, count)
    -> class names in label order or None`, for a kind whose classes have names (else the label
    numbers name them)."""

    path: str = ""
    pixel_max: float | None = None
    augment: bool = False
    imagenet: bool = False
    classes: str = ""

    def class_names(self, path: str, count: int) -> tuple[str, ...] | None:
        if not self.classes:
            return None
        return Entry(self.classes, "").load()(path, count)


EVALUATORS = {
    "train": Evaluator(
        "evaluate:train_evaluator", "train each member; the score is its validation accuracy"
    ),
    "proxy": Evaluator(
        "evaluate:proxy_evaluator",
        "score each member untrained with a zero-cost proxy (--proxy)",
        trains=False,
    ),
    "supernet": Evaluator(
        "evaluators.supernet:supernet_evaluator",
        "train the space once as a weight-sharing supernet; the score is each member's validation "
        "accuracy with inherited weights (--retrain-top K checks the best K from scratch)",
        one_shot=True,
    ),
    "darts": Evaluator(
        "evaluators.darts:darts_evaluator",
        "differentiable search (first-order DARTS) over the choices whose options share shapes; "
        "the one member it derives is scored with its inherited weights",
        one_shot=True,
    ),
}

SAMPLERS = {
    "tpe": Sampler("driver:tpe_sampler", "Optuna's tree-structured Parzen estimator"),
    "random": Sampler("driver:random_sampler", "each member drawn independently at random"),
    "nsga2": Sampler(
        "driver:nsga2_sampler",
        "the NSGA-II genetic algorithm, for Pareto fronts (its first generation, --population "
        "members, is drawn at random: with --trials at most that, it is random search)",
    ),
    "evolution": Sampler(
        "driver:evolution_sampler",
        "regularised (aging) evolution: the best of --sample-size members of the --population "
        "most recent ones, one decision mutated; the oldest member leaves (several objectives: "
        "a parent drawn from the sample's Pareto front)",
    ),
    "grid": Sampler(
        "driver:grid_sampler", "every member once, in turn (needs an enumerable space)"
    ),
}

DATA_KINDS = {
    "digits": DataKind(
        "cnnc.training.data:load_digits_kind",
        "scikit-learn's bundled 8×8 digits (1,797 grey images, 10 classes)",
        pixel_max=16.0,
    ),
    "cifar10": DataKind(
        "cnnc.training.data:load_cifar10_kind",
        "CIFAR-10's python batches in DIR (cifar-10-batches-py)",
        path="DIR",
        pixel_max=255.0,
        augment=True,
        classes="cnnc.training.runs:cifar10_classes",
    ),
    "folder": DataKind(
        "cnnc.training.data:load_folder_kind",
        "image files in DIR, one sub-folder per class",
        path="DIR",
        pixel_max=255.0,
        augment=True,
        imagenet=True,
        classes="cnnc.training.runs:folder_classes",
    ),
    "npz": DataKind(
        "cnnc.training.data:load_npz_kind",
        "arrays x [N, C, H, W] or [N, H, W, C] and y in a .npz FILE",
        path="FILE",
    ),
}


def trains(evaluator: str) -> bool:
    """Whether the evaluator of that name trains its members (a name no entry has: as `train`)."""
    entry = EVALUATORS.get(evaluator)
    return entry is None or entry.trains


def one_shot(evaluator: str) -> bool:
    """Whether the evaluator of that name scores members with shared weights trained once."""
    entry = EVALUATORS.get(evaluator)
    return entry is not None and entry.one_shot


def choices_help(table: dict, default: str) -> str:
    """`--evaluator`'s help: each name with its description, then the default."""
    return (
        "; ".join(f"{name}: {entry.help}" for name, entry in table.items())
        + f" (default: {default})"
    )


def data_specs() -> str:
    """`digits, cifar10:DIR, folder:DIR or npz:FILE`."""
    specs = [f"{name}:{kind.path}" if kind.path else name for name, kind in DATA_KINDS.items()]
    return ", ".join(specs[:-1]) + " or " + specs[-1]


def data_kinds_with(field: str) -> str:
    """`folder: and cifar10:`: the kinds whose entry sets `field`, as help text."""
    names = [
        f"{name}:" if kind.path else name
        for name, kind in DATA_KINDS.items()
        if getattr(kind, field)
    ]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def data_kind(spec: str) -> DataKind | None:
    """The kind a data spec names (`folder:~/pets` → folder's entry), or None."""
    return DATA_KINDS.get(spec.strip().partition(":")[0].lower())
