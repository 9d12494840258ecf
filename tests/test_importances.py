"""The decisions' importance (`search.report.importances`): each decision's η², checked against
1 − SS_within / SS_total (the same share computed the other way round) and by the rules that hold
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


def within(pairs) -> float:
    """1 − SS_within / SS_total: η² by the other decomposition."""
    mean = sum(v for _, v in pairs) / len(pairs)
    total = sum((v - mean) ** 2 for _, v in pairs)
    groups = {}
    for option, v in pairs:
        groups.setdefault(option, []).append(v)
    inside = sum((v - sum(g) / len(g)) ** 2 for g in groups.values() for v in g)
    return 1 - inside / total


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
    pool = [("max", 0.5), ("avg", 0.6), ("max", 0.9), ("none", 0.8)]
    assert found == pytest.approx({"k": within(k), "pool": within(pool)}, abs=1e-12)
    # by hand: k's means 0.5 and 0.85 about 0.64; SS_between 0.147, SS_total 0.172
    assert found["k"] == pytest.approx(0.147 / 0.172, abs=1e-12)


def test_decisions_without_an_importance_are_left_out():
    one_option = [({"k": "3"}, v, {}) for v in (0.1, 0.2, 0.3)]
    assert report.importances(study_of(one_option)) == {}
    too_few = [({"k": "3"}, 0.1, {}), ({"k": "5"}, 0.2, {})]
    assert report.importances(study_of(too_few)) == {}
    flat = [({"k": k}, 0.5, {}) for k in "353"]
    assert report.importances(study_of(flat)) == {}
    with pytest.raises(ValueError, match="no decision has an importance yet"):
        report.importance_axes(study_of(flat), None, "accuracy")


def test_a_multi_objective_studys_importance_is_its_first_values():
    rows = [
        ({"k": k}, [acc, lat], {}) for k, acc, lat in [("3", 0.1, 9), ("5", 0.9, 1), ("3", 0.2, 5)]
    ]
    study = study_of(rows, ("maximize", "minimize"))
    found = report.importances(study, lambda t: t.values[0])
    assert found["k"] == pytest.approx(within([("3", 0.1), ("5", 0.9), ("3", 0.2)]), abs=1e-12)


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
def test_eta_squared_is_a_share_unchanged_by_the_scores_scale(pairs, scale, shift):
    found = report._eta_squared(pairs)
    moved = report._eta_squared([(o, scale * v + shift) for o, v in pairs])
    if found is None:
        return
    assert 0.0 <= found <= 1.0
    if moved is not None:
        assert math.isclose(found, moved, rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose(found, min(1.0, max(0.0, within(pairs))), rel_tol=1e-6, abs_tol=1e-6)


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
