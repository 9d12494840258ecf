"""Golden diagnostics: each tests/ui/*.cnn marks its expected diagnostics inline
(`# ~ERROR E0301`, `# ~WARNING W0101`) and keeps the rendered output in a `.stderr` file beside it.
`pytest --bless` rewrites the goldens; review the diff like code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

UI = ROOT / "tests" / "ui"
CASES = sorted(p for p in UI.glob("*.cnn") if p.name != "E0203_cycle_b.cnn")
MARK = re.compile(r"#\s*~(ERROR|WARNING)\s+([EW]\d{4})")
CLI_ONLY = {"E0205", "E0410"}  # reached through command-line arguments: covered in test_cli.py
ELSEWHERE = {
    "E0601",
    "E0602",
    "E0603",
    "E0604",
    "E0605",  # `cnnc search` errors: tests/*search*
    "E0606",
    "E0607",
    "E0608",
    "E0609",  # a supernet too large for the machine: tests/test_supernet.py
    "E0503",  # a search-space error: covered in the search tests
    "E0501",  # `cnnc check` lists a space's decisions; the others refuse it: test_check_spaces.py
    "E0901",
    "E0902",  # checkpoints: tests/test_weights.py
    "E0911",  # ONNX export: tests/test_onnx.py
    "E0207",  # a lowering error (check accepts the name): covered by the lowering tests
    "E0708",  # a command's totals: tests/test_limits.py, with small totals (a UI case takes seconds)
    "E0710",  # a program of over 256 files: tests/test_imports.py
    "E0106",
}  # a file over 1 MiB, too large to keep in the repository: tests/test_imports.py


def expected_marks(path: Path) -> set[tuple[str, int, str]]:
    marks = set()
    for file in [path] + ([UI / "E0203_cycle_b.cnn"] if "E0203" in path.name else []):
        for n, line in enumerate(file.read_text().splitlines(), start=1):
            for _kind, code in MARK.findall(line):
                marks.add((file.name, n, code))
    return marks


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_ui_case(path, in_root, capsys, bless):
    rel = path.relative_to(ROOT)
    code, _out, err = run_cli(["check", rel, "--format", "concise"], capsys)
    found = set()
    for line in err.splitlines():
        m = re.match(r"(.+?):(\d+):\d+: (?:error|warning)\[([EW]\d{4})\]", line)
        if m:
            found.add((Path(m.group(1)).name, int(m.group(2)), m.group(3)))
    assert found == expected_marks(path)
    errors = any(c.startswith("E") for _, _, c in found)
    assert code == (1 if errors else 0)
    code, _out, err = run_cli(["check", rel, "--color", "never"], capsys)
    assert "Traceback" not in err
    golden = path.with_suffix(".stderr")
    if bless or not golden.exists():
        golden.write_text(err)
    assert err == golden.read_text()


def test_every_code_has_a_ui_case_and_a_page():
    pages = {p.stem for p in (ROOT / "dsl" / "explain").glob("*.md")}
    covered = {code for path in CASES for _, _, code in expected_marks(path)}
    assert pages - covered - CLI_ONLY - ELSEWHERE == set()
    codes_in_source = set()
    for folder in ("compiler", "dsl", "cnnc", "search"):
        for f in (ROOT / folder).rglob("*.py"):
            codes_in_source |= set(re.findall(r'"([EW]0\d{3})"', f.read_text()))
    assert codes_in_source - pages == set(), "every code the source emits needs a dsl/explain page"
