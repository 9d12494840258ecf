"""cnnc/commands/extras.py: a missing optional module is the user's to install, never a bug in cnnc.

Each case runs the command line in a fresh interpreter where the module cannot be imported (set to
None in `sys.modules`, as Python leaves a failed import), and expects exit 1 with the extra's exact
`pip install` line: before the work where the command knows what it needs, and from the middle of
the work where a library imports the module for us.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT

from cnnc.commands import extras


def cli_without(modules: tuple[str, ...], args: list[str], cwd, before: str = ""):
    """`cnnc ARGS` in a fresh interpreter where `modules` cannot be imported, run in `cwd` (its
    home too, for the caches)."""
    code = "\n".join(
        [
            "import sys",
            *(f"sys.modules[{m!r}] = None" for m in modules),
            before,
            "from cnnc.cli import main",
            f"sys.exit(main({args!r}))",
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(cwd)},
        timeout=300,
        check=False,
    )


def expect_missing(done, purpose: str, module: str, extra: str) -> None:
    assert (done.returncode, done.stderr) == (
        1,
        (
            f"error: {purpose} needs the module `{module}`, which is not installed\n"
            f"  = help: pip install 'cnnc[{extra}]'\n"
        ),
    ), done.stderr


def test_compile_to_onnx_without_the_onnx_extra(tmp_path):
    done = cli_without(("onnx",), ["compile", "lenet5", "-o", "lenet5.onnx"], tmp_path)
    expect_missing(done, "`cnnc compile -o X.onnx`", "onnx", "onnx")
    assert done.stdout == ""  # refused before the work
    assert not (tmp_path / "lenet5.onnx").exists()


def test_compile_to_onnx_without_onnxscript_takes_the_other_exporter(tmp_path):
    done = cli_without(("onnxscript",), ["compile", "lenet5", "-o", "lenet5.onnx"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "TorchScript-based exporter" in done.stdout
    assert (tmp_path / "lenet5.onnx").stat().st_size > 0


def test_a_module_missing_in_the_middle_of_the_work(tmp_path):
    """torch's exporter finds onnx missing and wraps the ImportError in an error of its own."""
    skip = "import cnnc.commands.extras as e; e.require = lambda *a: None"  # as if found at first
    done = cli_without(("onnx",), ["compile", "lenet5", "-o", "lenet5.onnx"], tmp_path, before=skip)
    expect_missing(done, "`cnnc compile`", "onnx", "onnx")


@pytest.mark.parametrize("command", ["search-report", "search"])
def test_postgresql_storage_without_the_postgres_extra(command, tmp_path):
    args = [command, "--storage", "postgresql://search@db.invalid/nas", "--study", "s"]
    if command == "search":
        args[1:1] = [str(ROOT / "zoo" / "spaces" / "tiny.cnn")]
    done = cli_without(("psycopg2",), args, tmp_path)
    expect_missing(done, "--storage `postgresql://search@db.invalid/nas`", "psycopg2", "postgres")


def test_another_missing_driver_names_its_module(tmp_path):
    args = ["search-report", "--storage", "mysql://u@h/db"]
    done = cli_without(("pymysql", "MySQLdb"), args, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "its database driver (the module `MySQLdb`) is not installed" in done.stderr


def test_missing_from_follows_the_chain():
    try:
        try:
            raise ModuleNotFoundError("No module named 'onnxscript.ir'", name="onnxscript.ir")
        except ImportError as inner:
            raise RuntimeError("export failed") from inner
    except RuntimeError as exc:
        found = extras.missing_from(exc, "exporting")
    assert (found.module, found.extra, str(found)) == (
        "onnxscript",
        "onnx",
        "exporting needs the module `onnxscript`, which is not installed",
    )
    assert extras.missing_from(ModuleNotFoundError("x", name="yaml")) is None  # not an extra's
    assert extras.missing_from(ValueError("no import here")) is None


def test_every_extra_lists_the_packages_of_its_modules():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]
    package = {"psycopg2": "psycopg2-binary"}  # where the distribution is named otherwise
    for extra, modules in extras.EXTRAS.items():
        names = {re.split("[<>=!~ ;\\[]", requirement)[0] for requirement in declared[extra]}
        assert {package.get(m, m) for m in modules} <= names, extra


def test_the_set_up_environment_has_every_extra():
    assert [m for m in extras.EXTRA_OF if not extras.installed(m)] == []


def test_a_postgresql_url_uses_the_driver_of_the_postgres_extra():
    """SQLAlchemy 2.1 opens `postgresql://` with psycopg 3, which the extra does not install."""
    from cnnc.commands.files import check_storage
    from cnnc.search.storage import database_url

    assert (
        database_url("postgresql://search@db.lan/nas") == "postgresql+psycopg2://search@db.lan/nas"
    )
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    check_storage("postgresql://search@db.lan/nas")  # its driver is found; nothing is connected
