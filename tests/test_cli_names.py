"""The command line's conveniences: FILE:NETWORK, zoo paths outside the checkout and the note when
a path falls back to the zoo, did-you-mean for commands and zoo names, several files and stdin for
`check`, and the smallest input a network accepts when the one given is too small."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.compiler.hints import MAX_SIDE, smallest_side


def cnnc(args, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The command line in a fresh process (for stdin, and for a working directory away from the
    checkout)."""
    env = {**os.environ, "NO_COLOR": "1"}
    code = "import sys; from cnnc.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def networks(stdout: str) -> list[str]:
    """`check`'s ok lines without their node counts (those follow the IR, not the command line)."""
    return [line.rsplit(",", 1)[0] for line in stdout.splitlines()]


# ---------------------------------------------------------------------------------------------
# Names: zoo models, FILE:NETWORK, zoo/ paths, did-you-mean


def test_zoo_name_with_a_network(capsys):
    code, out, err = run_cli(["check", "inception_module:naive"], capsys)
    assert code == 0 and networks(out) == ["ok: naive: [256, 28, 28] → [672, 28, 28]"]
    code, out, _ = run_cli(["summary", "inception_module:naive", "--format", "json"], capsys)
    assert code == 0 and '"network": "naive"' in out
    code, _, err = run_cli(["summary", "inception_module:naive", "--network", "other"], capsys)
    assert code == 2 and "names the network `naive`, but --network names `other`" in err
    code, _, err = run_cli(["check", "no_such_model:naive"], capsys)  # missing: named as written
    assert code == 2 and "no file `no_such_model:naive`" in err


def test_zoo_fallback_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no lenet5.cnn here
    code, _, err = run_cli(["compile", "lenet5.cnn", "-o", "lenet5.py"], capsys)
    zoo_file = ROOT / "zoo" / "lenet5.cnn"
    assert code == 0 and (tmp_path / "lenet5.py").is_file()
    assert err == f"note: no file `lenet5.cnn` here: using the zoo's `{zoo_file}`\n"
    code, _, err = run_cli(["check", "lenet5"], capsys)  # a bare name means the zoo: no note
    assert code == 0 and err == ""


def test_zoo_path_outside_the_checkout(tmp_path):
    done = cnnc(["check", "zoo/resnet18.cnn", "zoo/families/../vgg16.cnn"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == [
        "ok: resnet18: [3, 224, 224] → [1000]",
        "ok: vgg16: [3, 224, 224] → [1000]",
    ]
    assert "note: no file `zoo/resnet18.cnn` here: using the zoo's" in done.stderr


def test_did_you_mean_a_command(capsys):
    code, _, err = run_cli(["chek", "lenet5"], capsys)
    assert code == 2 and "unknown command `chek`: did you mean `check`?" in err
    code, _, err = run_cli(["frobnicate"], capsys)
    assert code == 2 and "unknown command `frobnicate`: the commands are check, summary" in err


def test_did_you_mean_a_zoo_model(capsys):
    code, _, err = run_cli(["summary", "resnt18"], capsys)
    assert code == 2 and "no file `resnt18`, and no zoo model of that name" in err
    assert "= help: a zoo model of a similar name exists: `resnet18`" in err
    code, _, err = run_cli(["check", "mobilenet_v2.cnm"], capsys)
    assert code == 2 and "`mobilenet_v2`" in err


def test_a_folder_is_not_a_program(tmp_path, capsys):
    code, _, err = run_cli(["check", tmp_path], capsys)
    assert code == 2 and f"`{tmp_path}` is a folder: name a .cnn file in it" in err


def test_public_names_exist():
    code = "from cnnc import *; print(summary('lenet5').params)"  # every advertised name resolves
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "60840\n"


# ---------------------------------------------------------------------------------------------
# check: several files, stdin


NET = "network N {\n    input [3, 8, 8]\n    return in -> c: Conv(4, 3, pad = 1)\n}\n"


def test_check_several_files_and_stdin(tmp_path):
    (tmp_path / "mine.cnn").write_text(NET)
    done = cnnc(
        ["check", "lenet5", "mine.cnn", "inception_module:naive", "-"],
        cwd=tmp_path,
        stdin=NET.replace("network N", "network fromstdin"),
    )
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == [
        "ok: lenet5: [1, 32, 32] → [10]",
        "ok: N: [3, 8, 8] → [4, 8, 8]",
        "ok: naive: [256, 28, 28] → [672, 28, 28]",
        "ok: fromstdin: [3, 8, 8] → [4, 8, 8]",
    ]


def test_check_several_files_reports_every_error(tmp_path, capsys):
    (tmp_path / "good.cnn").write_text(NET)
    (tmp_path / "bad.cnn").write_text(NET.replace("Conv(4, 3, pad = 1)", "Conv(4, 11)"))
    (tmp_path / "broken.cnn").write_text("network {")
    code, out, err = run_cli(
        [
            "check",
            tmp_path / "bad.cnn",
            tmp_path / "good.cnn",
            tmp_path / "broken.cnn",
            "--format",
            "concise",
        ],
        capsys,
    )
    assert code == 1
    assert networks(out) == ["ok: N: [3, 8, 8] → [4, 8, 8]"]
    assert "bad.cnn:3:21: error[E0303]" in err and "broken.cnn:1:" in err
    assert "found 2 errors in 2 files" in err


def test_stdin_imports_resolve_from_the_working_directory(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text(
        "block Two(c) {\n    return in -> Conv(c, 3, pad = 1) -> ReLU\n}\n"
    )
    program = (
        'import "lib/blocks.cnn"\nnetwork N {\n    input [3, 8, 8]\n    return in -> Two(4)\n}\n'
    )
    done = cnnc(["check", "-"], cwd=tmp_path, stdin=program)
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == ["ok: N: [3, 8, 8] → [4, 8, 8]"]
    done = cnnc(
        ["check", "-"],
        cwd=tmp_path,
        stdin="network N {\n    input [3, 8, 8]\n    return in -> Conv(4, 11)\n}\n",
    )
    assert done.returncode == 1 and "--> <stdin>:3:18" in done.stderr


def test_stdin_that_is_not_text(tmp_path):
    code = "import sys; from cnnc.cli import main; sys.exit(main(['check', '-']))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=b"network \xff",
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and b"stdin is not UTF-8 text: byte 0xff at offset 8" in done.stderr


# ---------------------------------------------------------------------------------------------
# The smallest input a network accepts


@pytest.mark.parametrize(
    "args, smallest",
    [
        (["check", "vgg16", "--input", "3,16,16"], "[3, 32, 32]"),  # five 2×2 pools
        (["summary", "vgg16", "--input", "3,20,40"], "[3, 32, 32]"),
        (["check", "alexnet", "--input", "3,32,32"], "[3, 63, 63]"),
    ],
)
def test_too_small_input_names_the_smallest(args, smallest, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "error[E0303]" in err
    assert f"= help: the smallest input this network accepts is {smallest}" in err


def test_no_smallest_input_for_other_errors(tmp_path, capsys):
    f = tmp_path / "two.cnn"  # too small and a wrong Linear: a larger input alone would not do
    f.write_text(
        "network N {\n    input [3, 8, 8]\n    a = in -> Conv(4, 11)\n"
        "    return in -> Flatten -> Linear(4) -> Conv(2, 1)\n}\n"
    )
    code, _, err = run_cli(["check", f], capsys)
    assert code == 1 and "E0303" in err and "E0304" in err and "smallest input" not in err


@settings(max_examples=60, deadline=None)
@given(threshold=st.integers(1, MAX_SIDE), failing=st.integers(1, MAX_SIDE))
def test_smallest_side_finds_the_threshold(threshold, failing):
    """For a monotone rule (sides ≥ threshold work), the search finds the threshold exactly, from any
    side known to fail, within its budget of tries."""
    failing = min(failing, threshold - 1)
    tries = []

    def accepts(side):
        tries.append(side)
        return side >= threshold

    if failing < 1:
        return  # every side works: nothing fails, so nothing is asked
    assert smallest_side(accepts, failing) == threshold
    assert len(tries) <= 24
