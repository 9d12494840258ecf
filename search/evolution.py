"""Regularised (aging) evolution as an Optuna sampler (Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019).

Contract of `EvolutionSampler(population, sample_size, seed)`:
- the population is the study's `population` most recent complete trials (by trial number): a new
  child joins it when its trial completes, and the oldest member leaves it then (aging, not the
  worst). Trials that never produced values (invalid, infeasible, pruned, failed) are no members.
- while the study holds fewer complete trials than `population`, each trial is drawn uniformly at
  random (the initial population).
- after that, each trial samples `sample_size` members uniformly (without replacement) from the
  population, takes the best as its parent, and mutates exactly one of the parent's decisions, chosen
  uniformly among those with more than one option, to another of its options, uniformly. Every other
  decision the child meets keeps the parent's option; a decision the parent never met (the mutation
  changed `depth`, and a deeper block brings new decisions) is drawn uniformly. Elaboration meets
  decisions in a fixed order, so the child meets every decision the parent met up to the mutated one,
  and the mutated one itself.
- the best of a sample: with one objective, its best value (the youngest on a tie); with several, a
  member drawn uniformly from the sample's non-dominated ones (rank 0 of non-dominated sorting), so
  that parents spread along the Pareto front instead of always favouring the first objective.
- everything is drawn from a generator seeded by (`seed`, trial number): the same seed and the same
  study give the same trials, in any process and after a resume. The trial's system attributes
  `evolution:parent` and `evolution:mutated` record its parent's number and the decision mutated.
- a child that is an architecture the study holds is reused (not counted), and the next trial is
  evolution's own again: no random member is put in its place.

The sampler reads the study's trials, so it works with any storage and with several workers.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

PARENT = "evolution:parent"
MUTATED = "evolution:mutated"


@dataclass(frozen=True)
class Plan:
    """What a trial does: copy `parent` (None: draw at random) except `mutate`, with `rng`."""

    parent: object | None  # optuna FrozenTrial
    mutate: str | None
    rng: random.Random


class EvolutionSampler(optuna.samplers.BaseSampler):
    """See the module docstring."""

    # every trial is its own: a worker never hands a trial to another sampler after a reused one
    # (`worker.Worker.exploring`), which would record a parent and a mutation it did not make
    proposes_alone = True

    def __init__(self, population: int = 20, sample_size: int = 5, seed: int = 0):
        if not 1 <= sample_size <= population:
            raise ValueError(
                f"`1 <= sample_size <= population` must hold, but got (sample_size={sample_size}, "
                f"population={population})"
            )
        self.population = population
        self.sample_size = sample_size
        self.seed = seed
        self._plans: dict[int, Plan] = {}

    def reseed_rng(self) -> None:
        self.seed = int.from_bytes(os.urandom(4), "big")

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}  # every decision is sampled on its own: the space is conditional

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def before_trial(self, study, trial) -> None:
        self._plans[trial.number] = self.plan(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._plans.pop(trial.number, None)

    def plan(self, study, trial) -> Plan:
        """Choose the trial's parent and the decision it mutates (module docstring)."""
        rng = random.Random(f"{self.seed}:{trial.number}")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        members = population(complete, self.population)
        if len(members) < self.population:
            return Plan(None, None, rng)
        sample = rng.sample(members, self.sample_size)
        parent = best(sample, [d.name for d in study.directions], rng)
        mutable = [n for n, d in parent.distributions.items() if len(options(d)) > 1]
        mutate = rng.choice(mutable) if mutable else None
        storage = study._storage  # as optuna's own samplers record their state on a trial
        storage.set_trial_system_attr(trial._trial_id, PARENT, parent.number)
        storage.set_trial_system_attr(trial._trial_id, MUTATED, mutate)
        return Plan(parent, mutate, rng)

    def sample_independent(self, study, trial, param_name, param_distribution):
        plan = self._plans.get(trial.number)
        if plan is None:  # a trial this sampler did not open (`before_trial` not called)
            plan = self._plans[trial.number] = self.plan(study, trial)
        parent = plan.parent
        if parent is None or parent.distributions.get(param_name) != param_distribution:
            return draw(param_distribution, plan.rng)
        value = parent.params[param_name]
        if param_name == plan.mutate:
            return other_option(param_distribution, value, plan.rng)
        return value


def population(complete, size: int) -> list:
    """The `size` most recent complete trials (by number) that hold values."""
    held = sorted((t for t in complete if t.values), key=lambda t: t.number)
    return held[-size:]


def best(sample: list, directions: list[str], rng: random.Random):
    """The sample's best (module docstring): by value with one objective, else drawn uniformly
    from its non-dominated members."""
    signs = [-1.0 if d == "MAXIMIZE" else 1.0 for d in directions]  # minimise each signed value

    def cost(t) -> tuple[float, ...]:
        return tuple(s * v for s, v in zip(signs, t.values))

    if len(directions) == 1:
        return min(sample, key=lambda t: (cost(t), -t.number))
    front = [t for t in sample if not any(dominates(cost(o), cost(t)) for o in sample)]
    return rng.choice(sorted(front, key=lambda t: t.number))


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """`a` is no worse than `b` anywhere and better somewhere (both minimised)."""
    return all(x <= y for x, y in zip(a, b)) and a != b


def options(distribution) -> list:
    """The values a discrete distribution allows, in order ([] for a continuous one)."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    return []


def draw(distribution, rng: random.Random):
    """A value of `distribution`, uniformly."""
    values = options(distribution)
    if values:
        return rng.choice(values)
    if isinstance(distribution, FloatDistribution):
        return rng.uniform(distribution.low, distribution.high)
    if isinstance(distribution, IntDistribution):  # a log-scaled int range
        return rng.randint(distribution.low, distribution.high)
    raise TypeError(f"evolution cannot sample a {type(distribution).__name__}")


def other_option(distribution, value, rng: random.Random):
    """Another option than `value`, uniformly (`value` itself when it is the only one)."""
    values = options(distribution)
    others = [v for v in values if v != value]
    return rng.choice(others) if others else value
