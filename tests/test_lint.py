"""The linter is part of the suite: `ruff check` and `ruff format --check` over the tree.

The rules and the pinned version are in pyproject.toml; a finding fails the test with ruff's own
report, which names the file, line and rule.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: `pip install -e '.[dev]'` brings the pinned version")
    return [found]


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"]
)
def test_tree_passes_ruff(args):
    done = subprocess.run(ruff() + args, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_is_the_pinned_version():
    pinned = next(
        line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"ruff==' in line
    )
    version = pinned.split('"ruff==')[1].split('"')[0]
    done = subprocess.run(ruff() + ["--version"], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["ruff", version]
