"""The decisions' importance (`search.report.importances`): each decision's ω², checked against
df_b (F − 1) / (df_b (F − 1) + n), the same share from the F statistic, and by the rules that hold
for every study."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.search import report

optuna.logging.set_verbosity(optuna.logging.ERROR)
KERNEL = optuna.distributions.CategoricalDistribution(["3", "5"])
POOL = optuna.distributions.CategoricalDistribution(["max", "avg", "none"])


def study_of(rows, directions=("maximize",)):
    """rows: (params, value or values, user_attrs)."""
    study = optuna.create_study(directions=list(directions))
    for params, value, attrs in rows:
        values = value if isinstance(value, list) else [value]
        dists = {name: {"k": KERNEL, "pool": POOL}[name] for name in params}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, values=values, user_attrs=attrs
            )
        )
    return study


def from_f(pairs) -> float:
    """ω² from the F statistic of a one-way analysis of variance, clipped at 0."""
    n = len(pairs)
    groups = {}
    for option, v in pairs:
        groups.setdefault(option, []).append(v)
    k = len(groups)
    mean = sum(v for _, v in pairs) / n
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
    inside = sum((v - sum(g) / len(g)) ** 2 for g in groups.values() for v in g)
    f = (between / (k - 1)) / (inside / (n - k))
    return max(0.0, (k - 1) * (f - 1) / ((k - 1) * (f - 1) + n))


def test_the_importance_of_a_small_study_exactly():
    rows = [
        ({"k": "3", "pool": "max"}, 0.5, {}),
        ({"k": "3", "pool": "avg"}, 0.6, {}),
        ({"k": "5", "pool": "max"}, 0.9, {}),
        ({"k": "5", "pool": "none"}, 0.8, {}),
        ({"k": "5", "pool": "max"}, 0.9, {"status": "reused"}),  # counted once, as its earlier
        ({"k": "3"}, 0.4, {}),  # `pool` not met: counts for `k` alone
    ]
    found = report.importances(study_of(rows))
    k = [("3", 0.5), ("3", 0.6), ("5", 0.9), ("5", 0.8), ("3", 0.4)]
    assert found.keys() == {"k"}  # `pool`: 3 options met in 4 trials, fewer than 3 + 2
    assert found["k"] == (pytest.approx(from_f(k), abs=1e-12), 5)
    # by hand: k's means 0.5 and 0.85 about 0.64; SS_between 0.147, SS_total 0.172,
    # MS_within 0.025 / 3: ω² = (0.147 − 0.025/3) / (0.172 + 0.025/3)
    assert found["k"][0] == pytest.approx((0.147 - 0.025 / 3) / (0.172 + 0.025 / 3), abs=1e-12)


def test_a_decision_of_pure_noise_is_not_important():
    """η² of a decision the score ignores is (k − 1)/(n − 1) on average, 0.29 for 3 options in 8
    trials; ω² takes chance out: scores that differ less between options than within them give 0."""
    rows = [({"k": "35"[i % 2]}, v, {}) for i, v in enumerate([0.1, 0.2, 0.3, 0.15, 0.25, 0.12])]
    assert report.importances(study_of(rows)) == {"k": (0.0, 6)}


def test_decisions_without_an_importance_are_left_out():
    one_option = [({"k": "3"}, v, {}) for v in (0.1, 0.2, 0.3)]
    assert report.importances(study_of(one_option)) == {}
    too_few = [({"k": "3"}, 0.1, {}), ({"k": "5"}, 0.2, {})]
    assert report.importances(study_of(too_few)) == {}
    flat = [({"k": k}, 0.5, {}) for k in "3535"]
    assert report.importances(study_of(flat)) == {}
    with pytest.raises(ValueError, match="no decision has an importance yet"):
        report.importance_axes(study_of(flat), None, "accuracy")


def test_a_multi_objective_studys_importance_is_its_first_values():
    values = [("3", 0.1, 9), ("5", 0.9, 1), ("3", 0.2, 5), ("5", 0.8, 2)]
    rows = [({"k": k}, [acc, lat], {}) for k, acc, lat in values]
    study = study_of(rows, ("maximize", "minimize"))
    found = report.importances(study, lambda t: t.values[0])
    pairs = [("3", 0.1), ("5", 0.9), ("3", 0.2), ("5", 0.8)]
    assert found["k"] == (pytest.approx(from_f(pairs), abs=1e-12), 4)


def test_the_importances_png_is_drawn(tmp_path):
    rows = [
        ({"k": k, "pool": p}, v, {})
        for k, p, v in [("3", "max", 0.1), ("5", "avg", 0.9), ("3", "none", 0.3), ("5", "max", 0.7)]
    ]
    files, notes = report.plot_study(study_of(rows), ("accuracy",), tmp_path)
    assert notes == []
    assert tmp_path / "importances.png" in files
    assert (tmp_path / "importances.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


scores = st.floats(-1e3, 1e3, allow_nan=False)
trials = st.lists(st.tuples(st.sampled_from(["3", "5"]), scores), min_size=3, max_size=30)


@settings(max_examples=60, deadline=None)
@given(trials, st.floats(0.01, 100), st.floats(-100, 100))
def test_omega_squared_is_a_share_below_eta_squared_unchanged_by_the_scores_scale(
    pairs, scale, shift
):
    found = report._omega_squared(pairs)
    moved = report._omega_squared([(o, scale * v + shift) for o, v in pairs])
    if found is None:
        return
    assert 0.0 <= found <= 1.0
    if moved is not None:
        assert math.isclose(found, moved, rel_tol=1e-6, abs_tol=1e-6)
    mean = sum(v for _, v in pairs) / len(pairs)
    groups = {}
    for o, v in pairs:
        groups.setdefault(o, []).append(v)
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
    total = sum((v - mean) ** 2 for _, v in pairs)
    assert found <= between / total + 1e-9  # η², which ω² corrects for chance
    inside = total - between
    if inside > 1e-9 * total:  # F is defined
        assert math.isclose(found, from_f(pairs), rel_tol=1e-6, abs_tol=1e-6)


def test_a_crafted_decision_name_draws_a_chart_of_bounded_size(tmp_path):
    """A handed study's decision names are data: 2,500 characters and 1,800 newlines drew a
    38,102 × 33,045 chart (5 GB); each name is now one escaped line of at most 48 characters,
    `$` shown, not read as mathematics, and at most 40 decisions are drawn."""
    import struct

    names = ["W" * 2500 + "\n" * 1800 + "$x^2$"] + [f"d{i}" for i in range(60)]
    study = optuna.create_study(direction="maximize")
    for t in range(4):
        params = {n: str((t + i) % 2) for i, n in enumerate(names)}
        dists = {n: optuna.distributions.CategoricalDistribution(["0", "1"]) for n in names}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=0.1 * t * t)
        )
    assert len(report.importances(study)) == 61
    assert report._label(names[0]) == "W" * 47 + "…"
    assert report._label("a$b\n") == r"a\$b\x0a"
    files, notes = report.plot_study(study, ("accuracy",), tmp_path)
    assert notes == [] and tmp_path / "importances.png" in files
    head = (tmp_path / "importances.png").read_bytes()[:24]
    width, height = struct.unpack(">II", head[16:24])  # the PNG's IHDR
    assert width < 1200 and height < 2000
