"""The guides stay true: docs/ARCHITECTURE.md and CONTRIBUTING.md against the code they describe.

- The import table of ARCHITECTURE.md (between its `imports` markers) is generated from `RULES` of
  tests/test_layers.py, the table the import tests enforce: a change to either shows here, and
  `pytest tests/test_docs.py --bless` rewrites the guide's copy.
- Every file the guides name in backticks (`dsl/safefs.py`, `compiler/lower/`) exists, and every
  dotted name they give (`cnnc.search.driver.make_sampler`) imports and resolves. Only what the
  guides name is checked: names added to the code need no line here.
- Every command `cnnc --help` lists is mentioned as `cnnc NAME` in ARCHITECTURE.md or README.md.
"""

from __future__ import annotations

import importlib
import re

import pytest
from conftest import ROOT, run_cli
from test_layers import RULES, Rule

GUIDES = (ROOT / "docs" / "ARCHITECTURE.md", ROOT / "CONTRIBUTING.md")
BEGIN, END = (
    "<!-- imports: begin (generated from tests/test_layers.py) -->",
    "<!-- imports: end -->",
)
TICKED = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"cnnc(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


# -- the import table ------------------------------------------------------------------------------


def _names(entries) -> str:
    return ", ".join(f"`{e}`" for e in entries) or "—"


def _row(name: str, rule: Rule) -> str:
    ours = _names(rule.ours) if rule.ours else "nothing of cnnc's"
    heavy = "any, inside functions only" if rule.lazy else _names(rule.heavy)
    return f"| `{name}` | {ours} | {_names(rule.never)} | {heavy} |"


def import_table() -> str:
    """The guide's table: one row per entry of RULES, in RULES's order (rooms in pipeline order)."""
    head = [
        "| module or room | may import (and what is under it) | except | heavy packages |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(head + [_row(name, rule) for name, rule in RULES.items()])


def test_the_import_table_is_the_one_the_tests_enforce(bless):
    path = GUIDES[0]
    text = path.read_text(encoding="utf-8")
    before, sep, rest = text.partition(BEGIN)
    table, sep2, after = rest.partition(END)
    assert sep and sep2, f"{path.name} lacks the markers {BEGIN} … {END}"
    if bless:
        path.write_text(f"{before}{BEGIN}\n{import_table()}\n{END}{after}", encoding="utf-8")
        return
    assert table.strip() == import_table(), (
        "docs/ARCHITECTURE.md's import table differs from RULES in tests/test_layers.py: "
        "run `pytest tests/test_docs.py --bless` and review the diff"
    )


def test_the_table_has_a_row_per_rule_with_its_imports():
    table = import_table()
    assert len(table.splitlines()) == 2 + len(RULES)
    assert "| `cnnc.dsl.safefs` | nothing of cnnc's | — | — |" in table
    assert (
        "| `cnnc.cli` | `cnnc`, `cnnc.api`, `cnnc.commands`, `cnnc.dsl` | — | any, inside functions only |"
        in table
    )


# -- the names the guides give exist ---------------------------------------------------------------


def top_level() -> set[str]:
    """The checkout's own top-level folders: the packages and the tools' folders (not `out/`, `runs/`
    or other folders a run leaves in the checkout)."""
    tools = {"tests", "fuzz", "bench", "docs", ".ci"}
    return {p.name for p in ROOT.iterdir() if p.name in tools or (p / "__init__.py").exists()}


def named_paths(text: str) -> set[str]:
    """Files and folders of the checkout named in backticks: a `.py` file anywhere, or any path
    under a top-level entry (`compiler/lower/`, `zoo/spaces/tiny.cnn`, `.ci/run`)."""
    out = set()
    for token in TICKED.findall(text):
        token = token.split("::")[0].strip()
        if " " in token or "<" in token or "*" in token:
            continue
        first = token.split("/")[0]
        if token.endswith(".py") or ("/" in token and first in top_level()):
            out.add(token)
    return out


def named_objects(text: str) -> set[str]:
    """Dotted names in backticks that start with `cnnc.` (`cnnc.api.load`, `cnnc.load(RUN)`)."""
    return {m.group(0) for token in TICKED.findall(text) if (m := DOTTED.match(token))}


def resolves(dotted: str) -> bool:
    """Whether `dotted` is a module of cnnc, or an attribute reached from the longest one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_file_a_guide_names_exists(guide):
    missing = sorted(
        p for p in named_paths(guide.read_text(encoding="utf-8")) if not (ROOT / p).exists()
    )
    assert not missing, f"{guide.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_module_and_function_a_guide_names_exists(guide):
    missing = sorted(n for n in named_objects(guide.read_text(encoding="utf-8")) if not resolves(n))
    assert not missing, f"{guide.name} names modules or functions that do not exist: {missing}"


def test_the_name_checks_see_names_and_catch_a_wrong_one():
    text = (
        "`dsl/safefs.py` `compiler/lower/` `cnnc.api.load` `cnnc.load(RUN)` `cnnc summary` "
        "`best.cnn` `cnnc.search.driver.no_such_function` `dsl/no_such.py`"
    )
    assert named_paths(text) == {"dsl/safefs.py", "compiler/lower/", "dsl/no_such.py"}
    assert named_objects(text) == {
        "cnnc.api.load",
        "cnnc.load",
        "cnnc.search.driver.no_such_function",
    }
    assert [resolves(n) for n in ("cnnc.api.load", "cnnc.load", "cnnc.compiler.ops.REGISTRY")] == [
        True
    ] * 3
    assert not resolves("cnnc.search.driver.no_such_function")
    assert not resolves("cnnc.no_such_room.load")
    assert not (ROOT / "dsl/no_such.py").exists()


# -- every command is described --------------------------------------------------------------------


def help_commands(capsys) -> list[str]:
    """The commands `cnnc --help` lists (argparse's sub-command block, indented under COMMAND)."""
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    block = out.partition("\n  COMMAND\n")[2]
    return [m.group(1) for m in re.finditer(r"^ {4}(\S+)", block, re.MULTILINE)]


def test_every_command_is_described(capsys):
    commands = help_commands(capsys)
    assert {"check", "summary", "search", "train"} <= set(commands)
    text = GUIDES[0].read_text(encoding="utf-8") + (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [c for c in commands if not re.search(rf"cnnc {re.escape(c)}(?![\w-])", text)]
    assert not missing, (
        f"commands mentioned in neither docs/ARCHITECTURE.md nor README.md: {missing}"
    )
