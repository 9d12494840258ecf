"""The sampler a worker turns to after a reused proposal: a member the study has not proposed.

Input: the space, a seed, and the study (its trials' `decisions` attributes, `driver.Objective`).
Output: an Optuna sampler whose trial takes every decision of one member.

Contracts:
- at a trial's first suggestion, up to `TRIES` members are drawn at random (each decision uniform over its
  options, `deciders.uniform`) and the first whose decisions no trial of the study holds is the
  trial's member; its decisions are the trial's suggestions, under the names and in the forms
  `driver.suggest` asks them (an int range's value, else the option's label).
- when all `TRIES` draws are known (a space nearly or wholly proposed), the trial's decisions
  are drawn at random, and the next trial tries once only until the study gains a trial, so an
  exhausted space costs one elaboration a proposal (`worker.EXHAUSTED_AFTER` then stops it).
- the sampler's random numbers are its own: seeded apart from the study's sampler (whose
  startup draws, under the same seed, would otherwise be replayed after a reuse).
"""

from __future__ import annotations

import hashlib
import random

import optuna

from cnnc.compiler import limits
from cnnc.search.deciders import int_range, uniform

TRIES = 16  # random members drawn, at most, for one unproposed one


class Unproposed(optuna.samplers.BaseSampler):
    """The module docstring's sampler."""

    def __init__(self, space, seed: int):
        salted = hashlib.sha256(f"explore:{seed}".encode()).digest()[:8]
        self.space, self.rng = space, random.Random(int.from_bytes(salted, "big"))
        self.fallback = optuna.samplers.RandomSampler(seed=self.rng.randrange(2**32))
        self.chosen: dict[int, dict[str, object]] = {}  # trial number → Optuna name → value
        self.failed_at: int | None = None  # trials held when all draws were known

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def choose(self, study, trial) -> dict[str, object]:
        """The trial's member's suggestions (module docstring), drawn at its first suggestion:
        the worker turns to this sampler after the trial was asked for."""
        trials = study.get_trials(deepcopy=False)
        known = {_key(t.user_attrs.get("decisions")) for t in trials}
        tries = 1 if self.failed_at == len(trials) else TRIES
        for _ in range(tries):
            with limits.spending():
                member = self.space.member(uniform(self.rng))
            if _key(member.labels()) not in known:
                self.failed_at = None
                return suggestions(member)
        self.failed_at = len(trials)
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        if trial.number not in self.chosen:
            self.chosen = {trial.number: self.choose(study, trial)}  # one trial at a time
        value = self.chosen[trial.number].get(param_name)
        if value is None or not _fits(value, param_distribution):
            return self.fallback.sample_independent(study, trial, param_name, param_distribution)
        return value

    def after_trial(self, study, trial, state, values) -> None:
        self.chosen.pop(trial.number, None)


def suggestions(member) -> dict[str, object]:
    """A member's decisions as `driver.suggest` asks them: under the decision's name, and under
    the name it takes when its options depend on other decisions."""
    out = {}
    for point, (_, index) in zip(member.points, member.picks):
        bounds = int_range(point.values)
        value = point.values[index] if bounds is not None else point.labels[index]
        out[point.name] = value
        out[f"{point.name}{{{'|'.join(point.labels)}}}"] = value
    return out


def _key(decisions) -> frozenset | None:
    if not isinstance(decisions, dict):
        return None
    return frozenset((str(k), str(v)) for k, v in decisions.items())


def _fits(value, distribution) -> bool:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return (
            type(value) is int
            and distribution.low <= value <= distribution.high
            and (value - distribution.low) % distribution.step == 0
        )
    return False
