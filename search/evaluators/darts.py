"""Differentiable search (first-order DARTS, Liu et al. 2019) over a space's supernet.

Input: `driver.Settings` and a `Dataset`. Output: an evaluator like `supernet_evaluator`'s (inherited
weights, BatchNorm recalibrated), with `derived`: the member DARTS derives, as `{decision: label}`,
which the driver runs as the study's next trial (and only that one: `driver.derived_first`).

Contract:
- A decision is *mixed* when its options change exactly one layer (the same label path in every
  option, every other node equal) and that layer's input and output shapes are the same in every
  option (kernel sizes, pool kinds, activations), checked in the first member that meets it (and
  again in each member trained: where it does not hold there, it is sampled there). It gets
  architecture weights α (one per option, zero at first), and its layer runs every option, summed
  with weights softmax(α). Each mixed layer's options use the supernet's shared weights.
- A decision whose options are small subgraphs of their own, each read from one node and read at
  one (NAS-Bench-201's edge ops: Identity, ReLU → Conv → BatchNorm, AvgPool), mixes the same way at
  each place it is used (`regions.py`: its sites), each option its own nodes.
- Every other decision (widths, depths: its options change shapes or the nodes) is sampled as the
  one-shot supernet does, uniformly a step (SPOS); the derived member takes, among those decisions'
  combinations (at most `CANDIDATES`, seeded), the one whose member scores best with its inherited
  weights. Such decisions are named in `note`.
- Each step (first-order): α takes one Adam step on a validation batch (lr `ALPHA_LR`, betas (0.5,
  0.999), weight decay 1e-3, as DARTS), then the weights one step of `settings.optimizer` on a
  training batch; `settings.epochs` passes over the training split.
- A mixed decision's option is the argmax of its α in the derived member.
- With `settings.keep_supernet` (`cnnc search`) the searched weights and α are kept in the study
  folder (`darts.safetensors`, `kept.py`), and a resume whose search would be the same loads them
  and derives the same member, instead of searching again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
from torch import nn

from cnnc.compiler import limits
from cnnc.compiler.lower import modules
from cnnc.compiler.lower.fx import container, instantiate
from cnnc.compiler.lower.steps import StepModule
from cnnc.compiler.lower.supernet import NotCovered, Supernet, tensor_shapes
from cnnc.compiler.ops import Lowering
from cnnc.search.deciders import int_range
from cnnc.search.driver import Settings, space_for
from cnnc.search.evaluators import kept, regions
from cnnc.search.evaluators.supernet import (
    batches_of,
    build,
    fits_data,
    guarded,
    score,
    scorer,
    weight_steps,
)
from cnnc.search.evaluators.train import MIN_TRAIN, TOO_FEW
from cnnc.search.resume import space_fingerprint
from cnnc.search.space import Space, fixed, graph_hash
from cnnc.training.data import Dataset, check_trainable
from cnnc.training.loop import cuda_indices, resolve_device

ALPHA_LR = 3e-3  # DARTS' 3e-4 is for 50 epochs; a search here runs a few
CANDIDATES = 64  # combinations of the sampled decisions the derivation scores at most


# ---------------------------------------------------------------------------------------------
# Which decisions mix


def variants(space: Space, labels: dict[str, str], name: str, options) -> list:
    """The members `labels` gives with decision `name` set to each option in turn."""
    out = []
    for option in options:
        with limits.spending():
            out.append(space.member(fixed({**labels, name: option})))
    return out


def mixed_path(members: list) -> tuple[str, ...] | None:
    """The one label path where the members' graphs differ, when nothing else differs and that
    node's input and output shapes agree; else None."""
    if not all(m.ok for m in members):
        return None
    graphs = [m.graph for m in members]
    orders = [[n.path for n in g.nodes_in_order()] for g in graphs]
    if any(order != orders[0] for order in orders):
        return None
    differ = set()
    for nodes in zip(*(g.nodes_in_order() for g in graphs)):
        if any(n != nodes[0] for n in nodes):
            differ.add(nodes[0].path)
    if len(differ) != 1:
        return None
    (path,) = differ
    nodes = [next(n for n in g.nodes_in_order() if n.path == path) for g in graphs]
    ins = [tuple(g.node(i).type for i in n.inputs) for g, n in zip(graphs, nodes)]
    same = all(i == ins[0] for i in ins) and all(n.type == nodes[0].type for n in nodes)
    return path if same and modules.kind(nodes[0]) is Lowering.MODULE else None


def classify(space: Space, members: list) -> dict[str, tuple[str, ...]]:
    """{decision: its options' labels} for every decision that mixes, each checked in the first
    member that meets it; two decisions never mix the same layer (the later one is sampled)."""
    mixed: dict[str, tuple[str, ...]] = {}
    checked: set[str] = set()
    paths: set[tuple[str, ...]] = set()
    for m in members:
        labels = m.labels()
        for point in m.points:
            if point.name in checked:
                continue
            checked.add(point.name)
            options = variants(space, labels, point.name, point.labels)
            taken = mixed_paths(options)
            if taken and not taken & paths:
                mixed[point.name] = point.labels
                paths |= taken
    return mixed


def mixed_paths(members: list) -> set[tuple[str, ...]]:
    """The label paths a decision mixes over its options' `members`: `mixed_path`'s one layer, or
    the nodes of its sites (`regions.sites`) in every option; empty when it does not mix."""
    path = mixed_path(members)
    if path is not None:
        return {path}
    found = regions.sites(members)
    if not found:
        return set()
    return {
        m.graph.node(i).path for site in found for m, ids in zip(members, site.nodes) for i in ids
    }


# ---------------------------------------------------------------------------------------------
# The mixed network


class Mixed(nn.Module):
    """Σ softmax(α)ᵢ · optionᵢ(x): one mixed layer; α lives in `Darts.alphas`."""

    def __init__(self, options: list[nn.Module], alphas: nn.ParameterDict, name: str):
        super().__init__()
        self.options = nn.ModuleList(options)
        self.alphas = [alphas]  # a list: not registered twice (the store and α are the Darts')
        self.name = name

    def forward(self, *inputs):
        weights = torch.softmax(self.alphas[0][self.name], dim=0)  # [K]
        out = None
        for w, option in zip(weights, self.options):
            y = w * option(*inputs)
            out = y if out is None else out + y
        return out


class Darts(nn.Module):
    """The supernet's weights and the architecture weights α, one vector per mixed decision."""

    def __init__(self, space: Space, net: Supernet, mixed: dict[str, tuple[str, ...]]):
        super().__init__()
        self.net = net
        self.space = space
        self.alphas = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(len(v))) for k, v in mixed.items()}
        )
        self.options = mixed
        self._built: dict[tuple, StepModule] = {}

    def network(self, member) -> StepModule:
        """`member`'s network with each of its mixed decisions' layers mixed (made once)."""
        labels = member.labels()
        key = tuple(sorted((k, v) for k, v in labels.items() if k not in self.options))
        found = self._built.get(key)
        if found is None:
            found = self._build(labels)
            self._built[key] = found
        return found

    def _build(self, labels: dict[str, str]) -> StepModule:
        base = self.space.member(fixed(labels)).graph
        mixes, placed, sites = {}, [], nn.ModuleList()
        for name in (n for n in labels if n in self.options):
            members = variants(self.space, labels, name, self.options[name])
            path = mixed_path(members)
            if path is not None and path not in mixes:
                options = [self._layer(m.graph, path, mixing=True) for m in members]
                mixes[path] = Mixed(options, self.alphas, name)
            elif path is None:  # its sites, or none here though where classified: sampled
                index = self.options[name].index(labels[name])
                for site in regions.sites(members) or ():
                    if site.nodes[index] & {i for ids, _, _ in placed for i in ids}:
                        continue  # another decision's site holds it: sampled here
                    placed.append((site.nodes[index], site.sources[index], site.outputs[index]))
                    sites.append(self._site(members, site, name))
        inside = {i for ids, _, _ in placed for i in ids}
        root = nn.Module()
        for node in base.nodes_in_order():
            if modules.kind(node) is not Lowering.MODULE or node.id in inside:
                continue
            module = mixes.get(node.path) or self._layer(base, node.path)
            container(root, base, node.path[:-1]).add_module(node.path[-1], module)
        if not placed:
            return StepModule(root, base)
        root.add_module(regions.MIXED, sites)
        return regions.MixedSteps(root, base, placed)

    def _site(self, members: list, site, name: str) -> Mixed:
        """The site's options side by side (`regions.Region`), weighted by the decision's α."""
        options = [
            regions.Region(m.graph, ids, source, out, self._mixing_layer)
            for m, ids, source, out in zip(members, site.nodes, site.sources, site.outputs)
        ]
        return Mixed(options, self.alphas, name)

    def _mixing_layer(self, graph, path) -> nn.Module:
        return self._layer(graph, path, mixing=True)

    def _layer(self, graph, path, mixing: bool = False) -> nn.Module:
        """The layer at `path`: shared weights, or a weightless module of its own. A mixed option
        never runs in place: every option reads the same input."""
        node = next(n for n in graph.nodes_in_order() if n.path == path)
        layer = modules.layer(graph, node)
        if mixing and "inplace" in layer.kwargs:
            kwargs = {k: v for k, v in layer.kwargs.items() if k != "inplace"}
            layer = modules.Layer(layer.ctor, layer.args, kwargs)
        return self.net._shared(node, layer) if tensor_shapes(layer) else instantiate(layer)

    def probabilities(self) -> dict[str, dict[str, float]]:
        return {
            name: dict(zip(self.options[name], torch.softmax(a.detach(), 0).tolist()))
            for name, a in self.alphas.items()
        }

    def argmax(self) -> dict[str, str]:
        return {n: self.options[n][int(a.detach().argmax())] for n, a in self.alphas.items()}


# ---------------------------------------------------------------------------------------------
# Search and derivation


def search(darts: Darts, members: list, data: Dataset, settings: Settings, device) -> int:
    """First-order DARTS (module docstring); returns the steps taken."""
    with guarded(device):
        darts.to(device)
        with torch.random.fork_rng(devices=cuda_indices(device)):
            torch.manual_seed(settings.seed)
            return _search(darts, members, data, settings, device)


def _search(darts: Darts, members: list, data: Dataset, settings: Settings, device) -> int:
    vx, vy = data.val_x.to(device), data.val_y.to(device)  # [M, C, H, W], [M]
    alphas = list(darts.alphas.parameters())  # none when no choice mixes: one-shot alone
    a_opt = (
        torch.optim.Adam(alphas, lr=ALPHA_LR, betas=(0.5, 0.999), weight_decay=1e-3)
        if alphas
        else None
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    rng = random.Random(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    val = endless(len(vx), settings.batch_size, gen)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [B, C, H, W], [B] -> []
        """α on a validation batch, then the weights' backward on the training batch."""
        net = darts.network(rng.choice(members))
        net.train()
        v = next(val)  # [B]
        if a_opt is not None:
            a_opt.zero_grad(set_to_none=True)
            loss_fn(net(vx[v.to(device)]), vy[v.to(device)]).backward()  # [B, K] → []
            a_opt.step()
            darts.net.zero_grad(set_to_none=True)  # the weights learn from the training batch
        loss = loss_fn(net(x), y)  # []
        loss.backward()
        return loss

    return weight_steps(darts.net, data, settings, device, gen, step)


def endless(n: int, batch_size: int, gen: torch.Generator):
    """Shuffled index batches of `range(n)`, pass after pass."""
    while True:
        yield from batches_of(n, batch_size, gen)


def derive(darts: Darts, members: list, data: Dataset, settings: Settings, device, keep):
    """The derived member: α's argmax for the mixed decisions, and for the others the combination
    whose member scores best with inherited weights (module docstring). Where no combination
    with the argmax gives a member that `keep` accepts and the supernet covers, the best of the
    covered members themselves."""
    best = darts.argmax()
    combos = {}
    for m in members:
        labels = {k: v for k, v in m.labels().items() if k not in darts.options}
        combos.setdefault(tuple(sorted(labels.items())), labels)
    candidates = list(combos.values())
    if len(candidates) > CANDIDATES:
        candidates = random.Random(settings.seed).sample(candidates, CANDIDATES)
    derived = []
    for labels in candidates:
        with limits.spending():
            derived.append(darts.space.member(fixed({**labels, **best})))
    scored = best_scored([m for m in derived if m.ok and keep(m)], darts, data, settings, device)
    return scored or best_scored(members[:CANDIDATES], darts, data, settings, device)


def best_scored(members: list, darts: Darts, data: Dataset, settings: Settings, device):
    """The member of `members` that scores best with inherited weights; None if none is covered."""
    scored = []
    for member in members:
        try:
            scored.append((score(darts.net, member.graph, data, settings, device), member))
        except NotCovered:
            continue
    scored.sort(key=lambda s: -s[0])
    return scored[0][1] if scored else None


def optuna_params(member) -> dict:
    """The member's decisions as the driver's Optuna parameters (`driver.suggest`'s values)."""
    params = {}
    for point, (_, index) in zip(member.points, member.picks):
        bounds = int_range(point.values)
        params[point.name] = point.values[index] if bounds is not None else point.labels[index]
    return params


# ---------------------------------------------------------------------------------------------
# The evaluator


def darts_evaluator(settings: Settings, data: Dataset):
    """Search with DARTS once; the evaluator scores members with the weights it trained."""
    from cnnc.search.evaluate import train_evaluator

    check_trainable(data, MIN_TRAIN, TOO_FEW, "add images to the data set")
    device = resolve_device(settings.device)
    start = time.perf_counter()
    space = space_for(settings, data.input_shape, data.num_classes)
    keep = fits_data(settings, data)
    net, members = build(
        space, settings.seed, device, settings.batch_size, settings.optimizer, keep
    )
    darts = Darts(space, net, classify(space, members))
    digest = kept.key(settings, data, space_fingerprint(space), "darts")
    searched, loaded, said = kept.load_or_train(
        settings.out if settings.keep_supernet else None,
        darts,
        digest,
        Searched(0, 0.0),
        lambda: Searched(
            search(darts, members, data, settings, device), time.perf_counter() - start
        ),
        device,
        FILE,
    )
    member = derive(darts, members, data, settings, device, keep)
    text = note(darts, member, searched.steps, searched.seconds) + said
    if loaded:
        text = text.replace("darts:", f"darts (kept in {FILE}):", 1) + "; not searched again"

    evaluate_member = scorer(net, data, settings, device)
    evaluate_member.derived = optuna_params(member)
    evaluate_member.derived_hash = graph_hash(member.graph)
    evaluate_member.retrain = train_evaluator(settings, data)
    evaluate_member.note = text
    evaluate_member.warning = undecided(darts.probabilities())
    return evaluate_member


FILE = "darts.safetensors"  # the searched weights and α, kept in the study folder (`kept.py`)


@dataclass(frozen=True, slots=True)
class Searched:
    """What the search cost (kept with its weights)."""

    steps: int
    seconds: float


def note(darts: Darts, member, steps: int, seconds: float) -> str:
    mixed = "; ".join(
        f"{name} " + " ".join(f"{label}={p:.2f}" for label, p in probs.items())
        for name, probs in darts.probabilities().items()
    )
    sampled = [p.name for p in member.points if p.name not in darts.options]
    return (
        f"darts: {steps:,} steps in {seconds:.1f} s; softmax(α): {mixed or 'no choice mixes'}"
        + (f"; sampled (options differ in shape): {', '.join(sampled)}" if sampled else "")
        + f"; derived: {', '.join(f'{k}={v}' for k, v in member.labels().items())}"
    )


UNDECIDED = 0.05  # a margin of softmax(α) below which an argmax is close to an arbitrary pick


def undecided(probabilities: dict) -> str:
    """The warning a search says when every mixed decision's two likeliest options are within
    UNDECIDED of each other: α barely left uniform, and the argmax says little (short searches
    do; DARTS also drifts to parameter-free ops, Zela et al. 2020)."""
    margins = []
    for probs in probabilities.values():
        top = sorted(probs.values(), reverse=True)
        if len(top) > 1:
            margins.append(top[0] - top[1])
    if not margins or max(margins) >= UNDECIDED:
        return ""
    return (
        f"α barely left uniform (the largest margin between a choice's two likeliest options is "
        f"{max(margins):.2f}): the derived member is close to an arbitrary pick; search longer "
        "(--epochs)"
    )
