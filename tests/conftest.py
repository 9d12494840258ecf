"""Shared test fixtures; `pytest --bless` rewrites golden files instead of comparing them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CNNC_LINT", "1")  # every graph the tests build is linted (STYLE.md rule 12)
# the memory budget (E0709) is half the machine's by default: fixed here, so that what checks and
# the goldens' figures are the same on every machine
os.environ["CNNC_MAX_MEMORY"] = "16G"


def pytest_addoption(parser):
    parser.addoption(
        "--bless", action="store_true", help="rewrite golden files (review the diff like code)"
    )


@pytest.fixture
def bless(request) -> bool:
    return request.config.getoption("--bless")


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository root as the working directory (paths in goldens are relative)."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture
def one_thread():
    """Small tensors run fastest on one thread: more threads only add synchronisation."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`cnnc ARGS` in-process: (exit code, stdout, stderr)."""
    from cnnc.cli import main

    os.environ["NO_COLOR"] = "1"
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


class Quiet:
    """The search driver's `Events`, saying nothing (for `driver.run` in tests)."""

    def started(self, rows, notes): ...
    def trial_started(self, number): ...
    def epoch(self, number, epoch, accuracy): ...
    def finished(self, row): ...


def by_params(graph, report):
    """An evaluator that scores a member by its parameter count (fewer is better), instantly."""
    from cnnc.compiler.analysis.summary import summarize
    from cnnc.search import driver

    return driver.Outcome(1.0 / summarize(graph).params, 0.01)
