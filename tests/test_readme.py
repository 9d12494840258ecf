"""README's code blocks run, so that an example cannot rot.

Every fenced block of README.md is found by its language tag and an optional marker, an HTML comment
on the line before the fence (invisible on the rendered page); each block is a test of its own, run
in a fresh temporary folder:

- `cnn`: checked with `cnnc check` (exit 0; `cnnc space` for a search space, one with
  `choice(…)`). A block whose first line is `# PATH` naming a file of the checkout
  (`# zoo/spaces/tiny.cnn`) is an excerpt: its lines, comments aside, appear in that file in order,
  and the file is checked. A block whose first line is `# NAME.cnn` (a bare name)
  is saved under that name in every block's folder, for the commands that use it.
- `sh`: each command runs. `cnnc …` runs as written (exit 0), except that long runs are shrunk:
  `--trials` to 2 and `--epochs` to 1 (SHRINK). `make TARGET` is checked for the target in the
  Makefile and `pip install …` for the extras in pyproject.toml; they are not run. Any other command
  fails the test: mark the block.
- `python`: executed.
- untagged: a text block (output shown), not checked, unless it starts with `$ cnnc …`: then the
  command runs and its standard output must equal the rest of the block.

Markers: `<!-- readme: skip REASON -->` (not run; the reason is required), `<!-- readme: error CODE
-->` (a `cnn` block that `cnnc check` must reject with that code), `<!-- readme: output-of COMMAND
-->` (the block's lines, `...` aside, appear in order in what the `cnnc` COMMAND prints, or in the
file it writes with `-o`). The files of the checkout such a command or a transcript names
(`tests/ui/…`) are copied into the folder at the same place, since their paths are printed;
elsewhere a zoo file's path finds the installed zoo, as it does for a user in any folder. The files
a user would bring (a folder of photos, a checkpoint) are generated small (PROPS), where a block
names them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*readme:\s*(\S+)\s*(.*?)\s*-->\s*$")
SHRINK = {"--trials": "2", "--epochs": "1"}  # a search or a training run as short as still runs
TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    marker: tuple[str, str] | None  # (kind, argument)

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang or 'text'}"


def blocks(text: str) -> list[Block]:
    """Every fenced block of `text`, with its marker; the fence's indent is taken off its lines."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, ticks, lang = fence.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks)
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
        found.append(Block(i + 1, lang, body + "\n", marker_before(lines, i)))
        i = end + 1
    return found


def marker_before(lines: list[str], i: int) -> tuple[str, str] | None:
    previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
    match = MARKER.match(previous)
    return (match.group(1), match.group(2)) if match else None


BLOCKS = blocks(README.read_text(encoding="utf-8"))


def named_file(block: Block) -> str | None:
    """`pets.cnn` for a `cnn` block that starts `# pets.cnn …` (a bare name, not a file here)."""
    first = block.text.split("\n", 1)[0]
    match = re.match(r"#\s*([\w.-]+\.cnn)\b", first)
    return match.group(1) if block.lang == "cnn" and match and "/" not in match.group(1) else None


def excerpt_of(block: Block) -> Path | None:
    """The checkout's file a `cnn` block that starts `# PATH` shows part of."""
    match = re.match(r"#\s*(\S+\.cnn)\s*$", block.text.split("\n", 1)[0])
    return ROOT / match.group(1) if match and (ROOT / match.group(1)).is_file() else None


# ---------------------------------------------------------------------------------------------
# Running commands in the block's folder


def cnnc_command() -> list[str]:
    script = Path(sys.executable).with_name("cnnc")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cnnc.cli"]


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CNNC_PATH", "PYTHONPATH")}
    env.update(
        HOME=str(folder), XDG_CACHE_HOME=str(folder / ".cache"), NO_COLOR="1", MPLBACKEND="Agg"
    )
    return env


def run(argv: list[str], folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        cwd=folder,
        env=environment(folder),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def run_cnnc(args: list[str], folder: Path, copy: bool = False) -> subprocess.CompletedProcess:
    """`cnnc ARGS`, long runs shrunk. With `copy`, the files of the checkout it names are copied in
    first (their paths are in its output); else a zoo file's path finds the installed zoo, as it
    does for a user anywhere."""
    args = [SHRINK[args[i - 1]] if i and args[i - 1] in SHRINK else a for i, a in enumerate(args)]
    for arg in args if copy else ():
        source = ROOT / arg
        if not Path(arg).is_absolute() and ".." not in arg and source.is_file():
            (folder / arg).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / arg)
    return run([*cnnc_command(), *args], folder)


def expect_ok(done: subprocess.CompletedProcess, what: str) -> None:
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{done.stderr[-3000:]}"


def in_order(expected: list[str], got: list[str]) -> list[str]:
    """The lines of `expected` not found in `got` in order (`...` matches anything)."""
    missing, at, got = [], 0, [g.rstrip() for g in got]
    for line in (e.rstrip() for e in expected):
        if line.strip() in ("", "..."):
            continue
        try:
            at = got.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


# ---------------------------------------------------------------------------------------------
# The files a user would bring: made small, where a block names them


def photos(folder: Path) -> None:
    """`photos/<class>/*.jpg`: 37 classes, as many as pets.cnn's head, three small images each
    (`abyssinian/001.jpg` among them: 89 to train on, more than one batch of 64); a class is a
    colour, so the classes can be learnt."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(37):
        name = "abyssinian" if c == 0 else f"breed{c:02d}"
        (folder / "photos" / name).mkdir(parents=True)
        colour = rng.integers(0, 256, size=3)
        for i in range(1, 4):
            pixels = np.clip(colour + rng.normal(0, 20, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "photos" / name / f"{i:03d}.jpg")


def checkpoint(folder: Path) -> None:
    """`resnet18.pth`: a state_dict with torchvision's ResNet-18 keys (random weights)."""
    code = (
        "import cnnc, torch; torch.save(cnnc.load('resnet18', seed=0).state_dict(), 'resnet18.pth')"
    )
    expect_ok(run([sys.executable, "-c", code], folder), "making resnet18.pth")


PROPS = {"photos": photos, "resnet18.pth": checkpoint}


@pytest.fixture(scope="module")
def props(tmp_path_factory) -> Path:
    """A folder where the props are made once, on first use."""
    return tmp_path_factory.mktemp("props")


@pytest.fixture
def folder(tmp_path, props, request) -> Path:
    """The block's folder: the README's named `.cnn` files, and the props the block names."""
    block = request.node.callspec.params["block"]
    for other in BLOCKS:
        if named_file(other):
            (tmp_path / named_file(other)).write_text(other.text, encoding="utf-8")
    for name, make in PROPS.items():
        if re.search(rf"\b{re.escape(name)}\b", block.text):
            if not (props / name).exists():
                make(props)
            copy = shutil.copytree if (props / name).is_dir() else shutil.copy
            copy(props / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# The checks, by language


def check_cnn(block: Block, folder: Path) -> None:
    source = excerpt_of(block)
    if source is not None:
        missing = in_order(code_lines(block.text), code_lines(source.read_text(encoding="utf-8")))
        where = source.relative_to(ROOT)
        assert missing == [], f"{block.id}: not in {where} (in this order): {missing}"
        path = source
    else:
        path = folder / (named_file(block) or "block.cnn")
        path.write_text(block.text, encoding="utf-8")
    command = "space" if "choice(" in path.read_text(encoding="utf-8") else "check"
    done = run_cnnc([command, str(path)], folder)
    if block.marker and block.marker[0] == "error":
        assert done.returncode == 1 and f"error[{block.marker[1]}]" in done.stderr, done.stderr
    else:
        expect_ok(done, f"{block.id}: cnnc check")


def code_lines(text: str) -> list[str]:
    """The lines of a `.cnn` text without comments and blank lines."""
    stripped = (re.sub(r"\s*#.*$", "", line).rstrip() for line in text.splitlines())
    return [line for line in stripped if line.strip()]


def check_sh(block: Block, folder: Path) -> None:
    for argv in commands(block.text):
        if argv[0] == "cnnc":
            expect_ok(run_cnnc(argv[1:], folder), f"{block.id}: {shlex.join(argv)}")
        elif argv[0] == "make":
            check_make(argv[1:])
        elif argv[:2] == ["pip", "install"]:
            check_pip(argv[2:])
        else:
            pytest.fail(
                f"{block.id}: `{argv[0]}` is not run by this test; mark the block "
                "<!-- readme: skip REASON --> or show the command otherwise"
            )


def commands(text: str) -> list[list[str]]:
    """The commands of a shell block: continued lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = (shlex.split(line, comments=True) for line in joined.splitlines())
    return [argv for argv in lines if argv]


def check_make(targets: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in targets:
        if "=" not in target:  # `make TORCH=...` sets a variable
            found = re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE)
            assert found, f"no target `{target}` in Makefile"


def check_pip(args: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for arg in args:
        match = re.fullmatch(r"(cnnc|\.)(?:\[([\w,-]+)\])?", arg)
        if arg.startswith("-") or match is None:
            continue  # an option, or another project's package
        unknown = [e for e in (match.group(2) or "").split(",") if e and e not in extras]
        assert unknown == [], f"`pip install {arg}`: no extra {unknown} in pyproject.toml"


def check_python(block: Block, folder: Path) -> None:
    expect_ok(run([sys.executable, "-c", block.text], folder), f"{block.id}: python")


def check_output_of(command: str, block: Block, folder: Path) -> None:
    argv = shlex.split(command)
    assert argv[0] == "cnnc", f"{block.id}: output-of runs `cnnc …` commands only"
    done = run_cnnc(argv[1:], folder, copy=True)
    written = argv[argv.index("-o") + 1] if "-o" in argv else None
    got = (folder / written).read_text(encoding="utf-8") if written else done.stdout + done.stderr
    missing = in_order(block.text.splitlines(), got.splitlines())
    assert missing == [], f"{block.id}: not in the output of `{command}` (in this order): {missing}"


def check_transcript(block: Block, folder: Path) -> None:
    """An untagged block `$ cnnc ARGS` then its output: the output, exactly."""
    first, _, expected = block.text.partition("\n")
    done = run_cnnc(shlex.split(first.removeprefix("$ "))[1:], folder, copy=True)
    expect_ok(done, f"{block.id}: {first}")
    got = [line.rstrip() for line in done.stdout.rstrip().splitlines()]
    assert got == expected.rstrip().splitlines(), f"{block.id}: the output of `{first}` changed"


CHECKS = {"cnn": check_cnn, "sh": check_sh, "python": check_python}


def checked(block: Block) -> bool:
    if block.marker and block.marker[0] == "output-of":
        return True
    return block.lang in CHECKS or block.text.startswith("$ cnnc ")


@pytest.mark.parametrize("block", [b for b in BLOCKS if checked(b)], ids=lambda b: b.id)
def test_readme_block(block, folder):
    kind, argument = block.marker or ("", "")
    if kind == "skip":
        assert argument, f"{block.id}: a skipped block says why"
        pytest.skip(argument)
    if kind == "output-of":
        check_output_of(argument, block, folder)
    elif block.lang in CHECKS:
        CHECKS[block.lang](block, folder)
    else:
        check_transcript(block, folder)


def test_every_marker_is_known():
    kinds = {"skip", "error", "output-of"}
    assert [b.id for b in BLOCKS if b.marker and b.marker[0] not in kinds] == []


def test_blocks_are_found_with_their_markers():
    text = (
        "intro\n```sh\ncnnc ops\n```\n\n<!-- readme: skip needs a server -->\n"
        "  ```python\n  print(1)\n  ```\n```\nplain\n```\n"
    )
    assert blocks(text) == [
        Block(2, "sh", "cnnc ops\n", None),
        Block(7, "python", "print(1)\n", ("skip", "needs a server")),
        Block(10, "", "plain\n", None),
    ]


def test_lines_in_order_and_commands_of_a_block():
    assert in_order(["a", "...", "c"], ["a", "b", "c"]) == []
    assert in_order(["c", "a"], ["a", "b", "c"]) == ["a"]  # found, but not after `c`
    assert commands("cnnc a \\\n    --b 1  # note\n\n# only a comment\nmake test\n") == [
        ["cnnc", "a", "--b", "1"],
        ["make", "test"],
    ]


RESIDUAL = """network bad {
    input [64, 56, 56]
    return (in -> Conv(128, 3, stride = 2, pad = 1) + in) -> ReLU
}
"""


def test_a_block_marked_with_an_error_must_fail_with_that_code(tmp_path):
    check_cnn(Block(1, "cnn", RESIDUAL, ("error", "E0301")), tmp_path)
    with pytest.raises(AssertionError):
        check_cnn(Block(1, "cnn", RESIDUAL, ("error", "E0201")), tmp_path)
    with pytest.raises(AssertionError):
        check_cnn(Block(1, "cnn", RESIDUAL, None), tmp_path)
