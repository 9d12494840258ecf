"""One-shot search: train a space's `Supernet` once, then score each member with inherited weights.

Input: `driver.Settings` and a `Dataset`. Output: an evaluator `(graph, report_epoch) -> Outcome`
whose score is the member's validation accuracy through the supernet, after its BatchNorm
statistics are recalibrated; it also has `retrain(graph)` (the train evaluator, from scratch) for
`--retrain-top`, and `note`, a line saying what the training cost.

Contract:
- The supernet holds weights for the members of its cover (`cover.py`: every member of a space
  it can walk; else a seeded sample with the space's largest and smallest member). Weights are per
  layer, so a member outside the cover is scored through its own path when every layer it has is
  held; one needing weights none of them has is a failed trial ("the supernet holds no weights
  for …"), never a wrong score.
- Training (`settings.epochs` epochs over the training split, SGD or the chosen optimiser with a
  cosine schedule, `train.make_optimizer`) draws its paths by a rule of `RULES` (`paths.py`):
  by default one architecture a step, uniformly, each the first member of it met (de-isomorphic
  sampling); or, over every assignment of the decisions, one path a step with each decision's
  option drawn uniformly (SPOS's rule) or FairNAS's fair steps. On a sampled cover the first two
  draw a new member of the space a step, each decision uniform (`cover.fresh`). When the supernet shares a slot
  between shapes (width choices), each step also trains the largest member and the smallest (the
  sandwich rule), their gradients summed into one step. `Training` counts the steps and the
  member passes (forward and backward of one member on one batch).
- Scoring a member: reset the running statistics of every BatchNorm, forward the images of
  `RECALIBRATE` training batches as one batch in train mode without gradients (momentum None), then
  the validation accuracy in eval mode, in batches of `SCORE_BATCHES` training batches. Under the
  default rule a member is scored through the trained member of its architecture
  (`paths.Representatives`), so isomorphic members get one score, computed once. Runs are seeded
  by `settings.seed` and leave the caller's RNG untouched.
- With `settings.keep_supernet` (`cnnc search`) the trained supernet is kept in the study folder,
  and a resume whose training would be the same loads it instead of training (`kept.py`): its new
  trials are scored by the weights that scored the old ones.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import NoReturn

import torch
from torch import nn

from cnnc.compiler import limits
from cnnc.compiler.analysis.summary import summarize
from cnnc.compiler.lower.supernet import NotCovered, Supernet, plan_slots, store_numel
from cnnc.dsl.diagnostics import CnncError, error
from cnnc.search.driver import Outcome, Settings, space_for
from cnnc.search.evaluators import kept
from cnnc.search.evaluators.cover import architectures, covered, fresh, walked_whole
from cnnc.search.evaluators.fit import SHARE, available_bytes, needed_bytes
from cnnc.search.evaluators.paths import Paths, Representatives
from cnnc.search.evaluators.train import MIN_TRAIN, NAN_CHECK_EVERY, TOO_FEW, recipe
from cnnc.search.resume import space_fingerprint
from cnnc.search.space import Space, fixed, over_budget
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import (
    Placement,
    batch_bounds,
    cuda_indices,
    evaluate,
    is_out_of_memory,
    make_optimizer,
    resolve_device,
)

RECALIBRATE = 4  # training batches that recalibrate a member's BatchNorm statistics
SCORE_BATCHES = 4  # the validation batch that scores a member, in training batches


RULE = "architecture"  # the default of `RULES` (bench/nas measured the three: BENCHMARKS.md)


@dataclass(frozen=True, slots=True)
class Training:
    steps: int  # optimiser steps
    passes: int  # member forward/backward passes (3 a step under the sandwich rule)
    members: int  # architectures covered
    sandwich: bool
    seconds: float
    rule: str = RULE
    sampled: bool = False  # the cover is a sample of a space too large to walk
    fresh: bool = False  # a new member of the space a step (`fresh`), not one of the cover

    def text(self) -> str:
        rule = FRESH if self.fresh else RULES[self.rule]
        rule += ", sandwich rule" if self.sandwich else ""
        sampled = " (a seeded sample, the space's largest and smallest among them)"
        return (
            f"supernet: {self.members:,} architectures{sampled if self.sampled else ''}, "
            f"trained {self.steps:,} steps ({self.passes:,} member passes, {rule}) "
            f"in {self.seconds:.1f} s"
        )


RULES = {  # how training draws its paths (module docstring) -> how `Training.text` says it
    "architecture": "a uniform architecture a step",
    "uniform": "each decision uniform, a path a step",
    "fair": "fair steps: each option of each decision once a step",
}
FRESH = "a new member a step, each decision uniform"


# ---------------------------------------------------------------------------------------------
# Building


def member_graph(space: Space, assignment: Mapping[str, str]):
    """The member `assignment` names (`{decision: option label}`); each name must be a decision it
    meets and each label one of that decision's options (ValueError), and the member valid
    (CnncError with its diagnostics)."""
    picks = {str(k): str(v) for k, v in assignment.items()}
    with limits.spending():
        member = space.member(fixed(picks))
    options = {p.name: p.labels for p in member.points}
    for name, label in picks.items():
        if name not in options:
            met = ", ".join(options) or "none"
            raise ValueError(f"the member meets no decision `{name}` (it meets: {met})")
        if label not in options[name]:
            raise ValueError(
                f"`{name}` has no option `{label}` (options: {', '.join(options[name])})"
            )
    if not member.ok:
        raise CnncError(*[d for d in member.diagnostics if d.is_error])
    return member.graph


def build(
    space: Space,
    seed: int | None = 0,
    device=None,
    batch_size: int = 0,
    optimizer: str = "sgd",
    keep=lambda member: True,
    distinct: bool = True,
) -> tuple[Supernet, list]:
    """The supernet of `space` (weights from `seed`) over its covered members that `keep` accepts
    (one per architecture, or with `distinct` False one per assignment: `covered`), and those
    members; E0609 when none is left, or before anything is allocated when it would not fit in
    `device`'s free memory (training it with `batch_size` and `optimizer`, or just holding it for a
    batch size of 0)."""
    valid = covered(space, seed or 0, distinct, keep)
    if not valid:
        refuse(
            "the space has no valid member to build a supernet from",
            "`cnnc space FILE` lists why its members are invalid",
        )
    members = [m for m in valid if keep(m)]
    if not members:
        refuse(
            "no member of the space can train on the data (each is over the budget, or its "
            "output is not one score per class)",
            "check the space's output against the data's classes, and --max-params/--max-macs",
        )
    plan = plan_slots([m.graph for m in members])
    check_fits(plan, members, torch.device(device or "cpu"), batch_size, optimizer)
    net = Supernet(plan, lambda a: member_graph(space, a), seed)
    return net, members


def check_fits(plan, members: list, device, batch_size: int, optimizer: str) -> None:
    """E0609 when the store, its gradients and optimiser state, and the largest member's
    activations (`fit.needed_bytes`) exceed `fit.SHARE` of the memory free on `device`."""
    numel = store_numel(plan)
    activations = 0
    if batch_size:
        activations = max(summarize(m.graph, fields=False).activations for m in members)
    need = needed_bytes(numel, activations, batch_size, optimizer)
    free = available_bytes(device)
    if free is None or need <= SHARE * free:
        return
    refuse(
        f"the supernet is too large for this machine: {numel:,} weights for "
        f"{len(members):,} architectures need about {need / 2**30:,.1f} GiB, "
        f"{free / 2**30:,.1f} GiB free on {device}",
        TOO_LARGE,
    )


TOO_LARGE = (
    "narrow the space's widest choices, or search it with `--evaluator train`, which holds one "
    "member at a time"
)


def refuse(message: str, help_: str) -> NoReturn:
    """E0609: the one-shot search cannot run (explained in dsl/explain/E0609.md)."""
    raise CnncError(error("E0609", message, None, helps=(help_,)))


def fits_data(settings: Settings, data: Dataset):
    """Whether a member can train on `data` within the budget: one input, one score per class."""

    def keep(member) -> bool:
        graph = member.graph
        if len(graph.inputs) != 1 or graph.output_kind != "tensor":
            return False
        if graph.output_type.shape != (data.num_classes,):
            return False
        s = summarize(graph, fields=False)
        return over_budget(s.params, s.macs, settings.max_params, settings.max_macs) is None

    return keep


# ---------------------------------------------------------------------------------------------
# Training


def sliced(net: Supernet, members: list) -> bool:
    """Whether some member uses a slot at a smaller shape than the slot's (width choices)."""
    return any(net.slices(m.graph) for m in members)


def sandwich(members: list) -> tuple:
    """(largest, smallest) member by parameter count."""
    ordered = sorted(members, key=lambda m: summarize(m.graph, fields=False).params)
    return ordered[-1], ordered[0]


def train(
    net: Supernet,
    members: list,
    data: Dataset,
    settings: Settings,
    device,
    rule: str = RULE,
    draw=None,
) -> Training:
    """Train the supernet's shared weights by `rule` (module docstring), or with the members
    `draw(rng)` gives a step besides the sandwich's ends (`fresh`); the caller's RNG is
    untouched."""
    start = time.perf_counter()
    with guarded(device):
        net.to(device)
        with torch.random.fork_rng(devices=cuda_indices(device)):
            torch.manual_seed(settings.seed)
            steps, passes, sandwiched = _train(
                net, members, data, settings, device, draw or drawing(members, rule)
            )
    count = len(members) if rule == "architecture" else len(architectures(members))
    seconds = time.perf_counter() - start
    return Training(steps, passes, count, sandwiched, seconds, rule, fresh=draw is not None)


@contextlib.contextmanager
def guarded(device):
    """Running out of memory while the supernet trains is E0609, not a crash."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        refuse(f"the supernet ran out of memory on {device} while training", TOO_LARGE)


def check_finite(loss: torch.Tensor, step: int) -> None:
    """A loss that is NaN or infinite ends the search (E0609): every score would be noise."""
    if not torch.isfinite(loss):
        refuse(
            f"the supernet's training loss became {float(loss)} at step {step}",
            "lower the learning rate, e.g. `--lr 0.01`",
        )


def _train(net, members, data, settings: Settings, device, draw) -> tuple[int, int, bool]:
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    rng = random.Random(settings.seed)
    sandwiched = sliced(net, members)
    fixed_ends = sandwich(members) if sandwiched else ()
    passes = 0

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [B, C, H, W], [B] -> []
        nonlocal passes
        paths = [*fixed_ends, *draw(rng)]
        for m in paths:
            loss = loss_fn(net(x, member=m.graph), y)  # []
            loss.backward()
        passes += len(paths)
        return loss

    net.train()
    steps = weight_steps(
        net, data, settings, device, torch.Generator().manual_seed(settings.seed), step
    )
    return steps, passes, sandwiched


def weight_steps(module: nn.Module, data: Dataset, settings: Settings, device, gen, step) -> int:
    """The shared weights' training, the one-shot evaluators' alike: `settings.epochs` passes over
    the training split in shuffled batches (`batches_of`, drawn from `gen`), each one step of the
    search's optimiser (`member_recipe`) over `module`'s parameters, on a cosine schedule over every
    step, after `step(x, y)` ran the batch's forward and backward passes and returned its last loss
    (checked finite every `NAN_CHECK_EVERY` steps). Returns the steps taken."""
    xs, ys = data.train_x.to(device), data.train_y.to(device)  # [N, C, H, W], [N]
    opt = make_optimizer(module, member_recipe(settings))
    batches = batch_count(len(xs), settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs * batches)
    steps = 0
    for _ in range(settings.epochs):
        for idx in batches_of(len(xs), settings.batch_size, gen):
            opt.zero_grad(set_to_none=True)
            loss = step(xs[idx.to(device)], ys[idx.to(device)])  # []
            if steps % NAN_CHECK_EVERY == 0:  # each check waits for the GPU
                check_finite(loss.detach(), steps + 1)
            opt.step()
            schedule.step()
            steps += 1
    return steps


def drawing(members: list, rule: str):
    """The members a step trains besides the sandwich's ends, `rng -> list`, by `rule`."""
    if rule not in RULES:
        raise ValueError(f"no supernet rule `{rule}` (rules: {', '.join(RULES)})")
    if rule == "architecture":
        return lambda rng: [rng.choice(members)]
    paths = Paths(members)
    return paths.fair if rule == "fair" else lambda rng: [paths.uniform(rng)]


def batch_count(n: int, batch_size: int) -> int:
    return max(1, sum(1 for _ in batch_bounds(n, batch_size, keep_last=True)))


def batches_of(n: int, batch_size: int, gen: torch.Generator):
    """Shuffled index batches [B] of `range(n)`, bounded as the trainer's (`batch_bounds`: a
    trailing batch of one is dropped, BatchNorm needs two)."""
    order = torch.randperm(n, generator=gen)  # [N]
    for start, stop in batch_bounds(n, batch_size, keep_last=True):
        yield order[start:stop]


# ---------------------------------------------------------------------------------------------
# Scoring


@torch.no_grad()
def recalibrate(net: Supernet, graph, data: Dataset, settings: Settings, device) -> None:
    """Reset the BatchNorm statistics the member uses and re-estimate them on the first
    `RECALIBRATE` training batches' images, in train mode: one forward of them all (the images of
    `RECALIBRATE` batches in one: the statistics of all of them, at a fraction of the calls)."""
    path = net.path(graph)
    norms = [m for m in path.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        if (
            m.track_running_stats
            and m.running_mean is not None
            and m.running_mean.device.type != "meta"
        ):
            m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator().manual_seed(settings.seed)
    try:
        net.train()
        idx = next(batches_of(len(data.train_x), RECALIBRATE * settings.batch_size, gen))
        net(data.train_x[idx].to(device), member=graph)  # [RECALIBRATE · B, K]
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def score(net: Supernet, graph, data: Dataset, settings: Settings, device) -> float:
    """The member's validation accuracy with inherited weights, after recalibration."""
    recalibrate(net, graph, data, settings, device)
    path = net.path(graph)
    val_x, val_y = data.val_x.to(device), data.val_y.to(device)  # [M, C, H, W], [M]
    where = Placement(device=torch.device(device), amp=None, memory_format=torch.contiguous_format)
    # without gradients a batch holds no activations for backward: a larger one costs less a member
    return evaluate(path, val_x, val_y, SCORE_BATCHES * settings.batch_size, where)[1]


# ---------------------------------------------------------------------------------------------
# The evaluator


def scorer(net: Supernet, data: Dataset, settings: Settings, device, trained=None):
    """The evaluator `(graph, report_epoch) -> Outcome` of a trained supernet: `score`, or a
    failed outcome for a member it does not cover. With `trained` (the members training drew, one
    per architecture) a member is scored through its architecture's trained member, once."""
    representatives = None if trained is None else Representatives(trained)
    known: dict[int, float] = {}  # architecture index -> its score

    def evaluate_member(graph, report_epoch) -> Outcome:
        start = time.perf_counter()
        target, index = (graph, None) if representatives is None else representatives.of(graph)
        try:
            accuracy = (
                known[index] if index in known else score(net, target, data, settings, device)
            )
        except NotCovered as exc:
            return Outcome(math.nan, time.perf_counter() - start, str(exc))
        if index is not None:
            known[index] = accuracy
        return Outcome(accuracy, time.perf_counter() - start, None, {}, (accuracy,))

    return evaluate_member


def supernet_evaluator(settings: Settings, data: Dataset, rule: str = RULE):
    """Build and train the supernet of `settings.file` once, its paths drawn by `rule` (`RULES`);
    score members with its weights."""
    from cnnc.search.evaluate import train_evaluator

    check_trainable(data, MIN_TRAIN, TOO_FEW, "add images to the data set")
    device = resolve_device(settings.device)
    space = space_for(settings, data.input_shape, data.num_classes)
    keep = fits_data(settings, data)
    net, members = build(
        space,
        settings.seed,
        device,
        settings.batch_size,
        settings.optimizer,
        keep,
        distinct=rule == "architecture",
    )
    sampled = not walked_whole(space)
    draw = fresh(space, net, members, keep) if sampled and rule != "fair" else None
    digest = kept.key(settings, data, space_fingerprint(space), rule)
    ran = Training(0, 0, 0, sliced(net, members), 0.0, rule, sampled, draw is not None)
    training, loaded, said = kept.load_or_train(
        settings.out if settings.keep_supernet else None,
        net,
        digest,
        ran,
        lambda: replace(train(net, members, data, settings, device, rule, draw), sampled=sampled),
        device,
    )
    note = training.text() + said
    if loaded:
        note = note.replace("supernet:", f"supernet (kept in {kept.FILE}):", 1)
        note += "; not trained again"
    trained = members if rule == "architecture" else None
    evaluate_member = scorer(net, data, settings, device, trained)
    evaluate_member.retrain = train_evaluator(settings, data)
    evaluate_member.training = training
    evaluate_member.note = note
    return evaluate_member


def member_recipe(settings: Settings):
    """The search's training rules (`cnnc.search.evaluators.train.recipe`): its optimiser and
    weight decay are the supernet's too."""
    return recipe(
        settings.epochs,
        settings.batch_size,
        settings.lr,
        settings.optimizer,
        settings.label_smoothing,
        settings.seed,
    )
