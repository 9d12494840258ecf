"""A short fuzzing run in every test run (`make fuzz` runs the long one): mutants of the zoo and the UI
cases and generated programs go through check → summary → load → forward, and none may end in an
internal error, a hang, a memory blow-up, an escape, leaked text or an accepted program that does not run."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "fuzz"))

import run as fuzz_run


@pytest.mark.parametrize("seed", [7])
def test_short_fuzz_run_finds_no_bug(seed, tmp_path):
    counts = fuzz_run.fuzz(
        seconds=600,
        workers=1,
        seed=seed,
        out=tmp_path,
        timeout=20.0,
        memory_mb=500.0,
        limit=300,
        deep_every=10,
    )
    assert counts.total() == 300
    bugs = {k: n for k, n in counts.items() if k.startswith("bug")}
    saved = sorted(p.read_text() for p in (tmp_path / "bugs").glob("*.txt"))
    assert bugs == {}, "".join(saved[:10])
    # the run exercised every stage: some inputs were rejected, some ran end to end
    assert counts["rejected"] > 0 and counts["ran"] > 0


def test_mutants_are_reproducible():
    import random

    from mutate import generate, mutate

    texts, ops = fuzz_run.corpus(), fuzz_run.op_names()
    first = [mutate(random.Random(3), texts[0], texts, ops) for _ in range(2)]
    assert first[0] == first[1]
    assert generate(random.Random(5), ops) == generate(random.Random(5), ops)
