"""The distribution as users install it.

The sdist and the wheel hold every module and data file of the tree (every file of the folders that
become `cnnc`'s packages), and the wheel, installed alone and not editable into a fresh virtual
environment, runs from a folder outside the checkout. One sdist and one wheel a session: the sdist
is built from a copy of the tree and the wheel from the unpacked sdist, as pip builds one, so a file
the sdist lacks is a file the wheel lacks. The fresh environment sees the set-up environment's
third-party packages through a `.pth` line naming its site-packages; that folder's own `.pth` files
(the editable install's finder among them) are not processed, so neither the checkout nor the
editable install can stand in for the wheel.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import cnnc

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "cnnc": "cnnc",
    "dsl": "cnnc/dsl",
    "compiler": "cnnc/compiler",
    "training": "cnnc/training",
    "search": "cnnc/search",
    "zoo": "cnnc/zoo",
}  # folder of the checkout → its place in the wheel
BUILD_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SKIPPED = {
    ".git",
    ".venv",
    "__pycache__",
    "build",
    "dist",
    "out",
    "runs",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
}  # what a tree walk leaves out where git is not at hand
NAME = f"cnnc-{cnnc.__version__}"


def tree_files() -> list[str]:
    """The checkout's files, relative and sorted: git's tracked and not ignored ones (a walk without
    caches and builds where git is missing)."""
    try:
        git = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = subprocess.run(git, cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return walked_files()
    names = {name for name in listed.decode().split("\0") if name}
    return sorted(name for name in names if (ROOT / name).is_file())  # deleted, not yet staged


def walked_files() -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED and not d.endswith(".egg-info")]
        found += [
            (Path(dirpath) / f).relative_to(ROOT).as_posix()
            for f in filenames
            if not f.endswith((".pyc", ".pyo"))
        ]
    return sorted(found)


def package_files() -> dict[str, str]:
    """{path in the checkout: path in the wheel} for every file of the packaged folders."""
    files = {}
    for name in tree_files():
        folder, _, rest = name.partition("/")
        if folder in FOLDERS and rest:
            files[name] = f"{FOLDERS[folder]}/{rest}"
    return files


def build(kind: str, source: Path, out: Path) -> Path:
    """setuptools' build backend, as pip calls it, without build isolation (the set-up environment
    has setuptools)."""
    code = f"from setuptools import build_meta as b; print(b.build_{kind}({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=source, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> SimpleNamespace:
    """The sdist (from a copy of the tree) and the wheel (from the unpacked sdist)."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "tree"
    for name in tree_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    sdist = build("sdist", source, tmp)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    wheel = build("wheel", tmp / "unpacked" / NAME, tmp)
    return SimpleNamespace(sdist=sdist, wheel=wheel, tmp=tmp)


@pytest.fixture(scope="session")
def installed(dist) -> SimpleNamespace:
    """The wheel installed (`--no-deps`, not editable) into a fresh virtual environment, which then
    sees the set-up environment's site-packages; `run(*args)` runs a command there, in a folder
    outside the checkout."""
    venv = dist.tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        "--disable-pip-version-check",
        "-q",
        str(dist.wheel),
    ]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(
        subprocess.run(
            [str(python), "-c", where], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # written after the install, so that pip saw none of the set-up environment's packages
    (site / "setup_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = dist.tmp / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CNNC_PATH", "CNNC_LINT")
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        NO_COLOR="1",
        PYTHONNOUSERSITE="1",
        XDG_CACHE_HOME=str(dist.tmp / "cache"),
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    return SimpleNamespace(venv=venv, site=site, work=work, run=run)


def test_the_wheel_holds_every_file_of_the_packaged_folders(dist):
    with zipfile.ZipFile(dist.wheel) as archive:
        names = {n for n in archive.namelist() if not n.startswith(f"{NAME}.dist-info/")}
    expected = set(package_files().values())
    assert {
        "cnnc/commands/__init__.py",
        "cnnc/dsl/cnn.lark",
        "cnnc/dsl/explain/E0301.md",
        "cnnc/zoo/families/resnet.cnn",
        "cnnc/zoo/accuracy.json",
    } <= expected
    assert sorted(expected - names) == []  # in the tree, not shipped
    assert sorted(names - expected) == []  # shipped, not in the tree


def test_the_sdist_holds_the_packaged_folders_and_what_builds_them(dist):
    with tarfile.open(dist.sdist) as archive:
        names = {m.name.removeprefix(f"{NAME}/") for m in archive.getmembers() if m.isfile()}
    made = {"PKG-INFO", "setup.cfg"}  # written by setuptools
    names = {n for n in names if n not in made and not n.startswith("cnnc.egg-info/")}
    expected = set(package_files()) | set(BUILD_FILES)
    assert sorted(expected - names) == []
    assert sorted(names - expected) == []


def test_the_wheel_is_named_with_the_package_version(dist):
    assert dist.wheel.name == f"{NAME}-py3-none-any.whl"
    with zipfile.ZipFile(dist.wheel) as archive:
        metadata = archive.read(f"{NAME}.dist-info/METADATA").decode()
    assert f"\nVersion: {cnnc.__version__}\n" in metadata
    assert "\nProvides-Extra: onnx\n" in metadata and "\nProvides-Extra: postgres\n" in metadata


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    modules = ("cnnc", "cnnc.commands", "cnnc.dsl", "cnnc.zoo")
    code = f"import {', '.join(modules)}; " + "; ".join(f"print({m}.__file__)" for m in modules)
    code += "; import sys; print([m for m in sys.modules if 'editable' in m])"  # no finder of
    done = installed.run("python", "-c", code)  # the set-up environment's editable install
    assert done.returncode == 0, done.stderr
    *files, finders = done.stdout.splitlines()
    assert finders == "[]"
    for line in files:
        assert Path(line).is_relative_to(installed.site), line


def test_version(installed):
    done = installed.run("cnnc", "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"cnnc {cnnc.__version__}\n", "")


def test_summary_of_a_zoo_model(installed):
    done = installed.run("cnnc", "summary", "resnet152", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert '"params": 60192808' in done.stdout  # torchvision's resnet152


def test_ops(installed):
    done = installed.run("cnnc", "ops")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"Conv", "BatchNorm", "Linear"} <= listed


def test_explain(installed):
    done = installed.run("cnnc", "explain", "E0301")
    assert done.returncode == 0, done.stderr
    page = (ROOT / "dsl" / "explain" / "E0301.md").read_text(encoding="utf-8")
    assert done.stdout == page.rstrip() + "\n"


def test_compile_to_python_source(installed):
    done = installed.run("cnnc", "compile", "resnet18", "-o", "x.py")
    assert done.returncode == 0, done.stderr
    source = (installed.work / "x.py").read_text(encoding="utf-8")
    assert any(isinstance(node, ast.ClassDef) for node in ast.parse(source).body)


def test_load_from_python(installed):
    code = "import cnnc; m = cnnc.load('resnet18'); print(sum(p.numel() for p in m.parameters()))"
    done = installed.run("python", "-c", code)
    assert (done.returncode, done.stdout) == (0, "11689512\n"), done.stderr
