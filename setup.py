"""What the `cnnc` distribution holds, found in the tree rather than listed by hand.

pyproject.toml holds the metadata. This file adds what setuptools cannot be told declaratively: the
top-level folders are subpackages of `cnnc` (`cnnc.dsl` = `dsl/`, …; DESIGN.md, "Packaging"), so
every package below each folder (a folder with an `__init__.py`) is found here, and every other file
in those folders (the grammar, the explain pages, the zoo) ships as package data. A new module, op
page or zoo model therefore ships without an edit here; `tests/test_packaging.py` builds the sdist
and the wheel and compares their files with the tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
FOLDERS = {  # import name → folder of the checkout
    "cnnc": "cnnc",
    "cnnc.dsl": "dsl",
    "cnnc.compiler": "compiler",
    "cnnc.training": "training",
    "cnnc.search": "search",
    "cnnc.zoo": "zoo",
}
NOT_SHIPPED = (".pyc", ".pyo")  # bytecode is made where the package is installed


def packages() -> list[str]:
    """Each mapped folder's package and every package found below it, named under `cnnc`."""
    found = []
    for name, folder in FOLDERS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(str(HERE / folder))]
    return found


def data_files(folder: str) -> list[str]:
    """Every file under `folder` that is not Python source or bytecode, relative to it."""
    root = HERE / folder
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            if not filename.endswith((".py", *NOT_SHIPPED)):
                files.append((Path(dirpath) / filename).relative_to(root).as_posix())
    return files


setup(
    package_dir=FOLDERS,
    packages=packages(),
    package_data={name: data_files(folder) for name, folder in FOLDERS.items()},
    include_package_data=False,  # package_data above is the whole list; no MANIFEST.in
)
