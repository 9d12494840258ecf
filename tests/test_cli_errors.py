"""Exit codes tell the truth: every failure caused by the user's file, arguments, data, storage or
file system exits 1 (or 2 for usage) with a one-line message and a help line, never 70. And the
command line's conveniences: several files and stdin for `check`, FILE:NETWORK, zoo paths outside the
checkout, did-you-mean for commands and zoo names, the smallest input a network accepts."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.commands.hints import MAX_SIDE, smallest_side

LINUX = sys.platform.startswith("linux")


def cnnc(args, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The installed command in a fresh process (for stdin and for a working directory away from the
    checkout)."""
    env = {**os.environ, "NO_COLOR": "1"}
    code = "import sys; from cnnc.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def networks(stdout: str) -> list[str]:
    """`check`'s ok lines without their node counts (those follow the IR, not the command line)."""
    return [line.rsplit(",", 1)[0] for line in stdout.splitlines()]


def assert_user_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert err.startswith("error: ") and "\n  = help: " in err, err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


# ---------------------------------------------------------------------------------------------
# Outputs: -o naming a folder, a path under a file, a place that cannot be written


@pytest.mark.parametrize("command, suffix", [("render", ".svg"), ("render", ".dot"), ("compile", ".py"),
                                             ("compile", ".pt")])
def test_output_that_is_a_folder(command, suffix, tmp_path, capsys):
    folder = tmp_path / f"out{suffix}"
    folder.mkdir()
    code, out, err = run_cli([command, "lenet5", "-o", folder], capsys)
    assert_user_error(code, err, f"`{folder}` is a folder", "-o needs a file name")
    assert out == ""  # refused before any work


@pytest.mark.parametrize("command, name", [("render", "x.dot"), ("compile", "x.py"), ("zoo", "x.png")])
def test_output_under_a_file(command, name, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    flag = "--plot" if command == "zoo" else "-o"
    args = [command, flag, blocker / name] if command == "zoo" else [command, "lenet5", flag, blocker / name]
    code, out, err = run_cli(args, capsys)
    assert_user_error(code, err, "cannot write", f"`{blocker}` is a file, not a folder")
    assert out == ""


def test_zoo_plot_into_a_folder(tmp_path, capsys):
    code, out, err = run_cli(["zoo", "--plot", tmp_path], capsys)
    assert code == 2 and "--plot must end in one of .png" in err
    folder = tmp_path / "chart.png"
    folder.mkdir()
    code, out, err = run_cli(["zoo", "--plot", folder], capsys)
    assert_user_error(code, err, "is a folder, but --plot needs a file name")


@pytest.mark.skipif(not LINUX, reason="/proc refuses new files on Linux only")
@pytest.mark.parametrize("command, name", [("render", "cnnc-test.dot"), ("compile", "cnnc-test.py")])
def test_output_where_nothing_can_be_written(command, name, capsys):
    code, _, err = run_cli([command, "lenet5", "-o", Path("/proc") / name], capsys)
    assert_user_error(code, err, f"cannot write `/proc/{name}`", "choose a place you can write to with -o")


def test_output_name_too_long(tmp_path, capsys):
    code, _, err = run_cli(["render", "lenet5", "-o", tmp_path / ("a" * 300 + ".svg")], capsys)
    assert_user_error(code, err, "cannot write", "File name too long")


# ---------------------------------------------------------------------------------------------
# Study storage: damaged, read-only, unknown


def garbage_study(folder: Path) -> Path:
    folder.mkdir()
    (folder / "study.db").write_text("these are not the bytes of a database\n")
    return folder


def damaged_study(folder: Path) -> Path:
    """A file that starts as SQLite does but whose pages are noise: only opening it finds out."""
    folder.mkdir()
    (folder / "study.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    return folder


def test_report_of_a_file_that_is_not_a_database(tmp_path, capsys):
    folder = garbage_study(tmp_path / "run")
    code, _, err = run_cli(["search-report", folder], capsys)
    assert_user_error(code, err, "study.db` is not a SQLite database", "move it away")


def test_report_of_a_damaged_database(tmp_path, capsys):
    folder = damaged_study(tmp_path / "run")
    code, _, err = run_cli(["search-report", folder], capsys)
    assert_user_error(code, err, "the study storage `sqlite:///", "failed: file is not a database")


@pytest.mark.parametrize("url, words", [
    ("foo://host/db", "`foo` is not a kind of database cnnc knows"),
    ("not a url", "is not a database URL"),
    ("mysql://someone@localhost/db", "its database driver"),
])
def test_report_with_a_bad_storage_url(url, words, capsys):
    code, _, err = run_cli(["search-report", "--storage", url], capsys)
    assert_user_error(code, err, words, "--storage sqlite:///")


@pytest.fixture
def read_only_study(tmp_path):
    """A real SQLite file that cannot be written: by its mode, or for root (whom modes do not stop)
    by the immutable flag."""
    folder = tmp_path / "run"
    folder.mkdir()
    db = folder / "study.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table kept (x)")
    connection.close()
    db.chmod(0o444)
    folder.chmod(0o555)
    immutable = False
    if os.access(db, os.W_OK):
        immutable = subprocess.run(["chattr", "+i", db], capture_output=True).returncode == 0
        if not immutable or os.access(db, os.W_OK):
            folder.chmod(0o755)
            pytest.skip("cannot make a file read-only here (root without the immutable flag)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", db], check=True)
    folder.chmod(0o755)
    db.chmod(0o644)


def test_report_of_a_read_only_study(read_only_study, capsys):
    code, _, err = run_cli(["search-report", read_only_study], capsys)
    assert_user_error(code, err, "study.db` is read-only", "make the file and its folder writable")


def test_a_study_that_turns_read_only_after_the_check(read_only_study, monkeypatch, capsys):
    """The check before the work can be overtaken (another process, a remount): the storage's own
    error is then the user's too."""
    from cnnc.commands import files

    monkeypatch.setattr(files, "check_storage", lambda url: None)
    code, _, err = run_cli(["search-report", read_only_study], capsys)
    assert_user_error(code, err, "failed: attempt to write a readonly database", "writable")


SEARCH = ["search", ROOT / "zoo" / "spaces" / "tiny.cnn", "--evaluator", "proxy", "--device", "cpu", "--trials", "1"]


def test_search_with_a_study_file_that_is_not_a_database(tmp_path, capsys):
    folder = garbage_study(tmp_path / "run")
    code, out, err = run_cli([*SEARCH, "--out", folder], capsys)
    assert_user_error(code, err, "study.db` is not a SQLite database")
    assert out == ""  # refused before the data was loaded


def test_search_with_a_damaged_study(tmp_path, capsys):
    folder = damaged_study(tmp_path / "run")
    code, _, err = run_cli([*SEARCH, "--out", folder], capsys)
    assert_user_error(code, err, "failed: file is not a database")


def test_search_with_a_bad_storage_url_or_out(tmp_path, capsys):
    code, _, err = run_cli([*SEARCH, "--out", tmp_path / "run", "--storage", "foo://host/db"], capsys)
    assert_user_error(code, err, "`foo` is not a kind of database")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run_cli([*SEARCH, "--out", blocker], capsys)
    assert_user_error(code, err, f"`{blocker}` is a file, but --out needs a folder")


# ---------------------------------------------------------------------------------------------
# A space too large to count in floats


def test_space_too_large_for_a_float(tmp_path, capsys):
    f = tmp_path / "huge.cnn"
    f.write_text("network huge {\n    input [3, 4, 4]\n"
                 "    return in -> [Conv(choice(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), 1) "
                 "for i in range(310)] -> Flatten -> Linear(10)\n}\n")
    code, out, err = run_cli(["space", f, "--samples", "2", "--walk-seconds", "0.2"], capsys)
    assert code == 0, err
    assert "≈ 1.00e+310 estimated from random paths" in out  # 10 options, 310 times


@pytest.mark.parametrize("args", [
    ["compile", "lenet5", "--seed", "99999999999999999999999", "-o", "lenet5.pt"],  # torch: overflow
    ["search", "lenet5", "--seed", "-1"],  # numpy: 0 … 2³² − 1
    ["space", "lenet5", "--seed", str(2**32)],
])
def test_seed_out_of_range_is_a_usage_error(args, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--seed: expected a whole number from 0 to 4294967295" in err


def test_space_samples_bounded(capsys):
    code, _, err = run_cli(["space", "spaces/tiny.cnn", "--samples", "99999999999"], capsys)
    assert code == 2 and "--samples must be from 0 to 100,000, but got 99,999,999,999" in err


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
    code, out, err = run_cli(["compile", "lenet5.cnn", "-o", "lenet5.py"], capsys)
    zoo_file = ROOT / "zoo" / "lenet5.cnn"
    assert code == 0 and (tmp_path / "lenet5.py").is_file()
    assert err == f"note: no file `lenet5.cnn` here: using the zoo's `{zoo_file}`\n"
    code, out, err = run_cli(["check", "lenet5"], capsys)  # a bare name means the zoo: no note
    assert code == 0 and err == ""


def test_zoo_path_outside_the_checkout(tmp_path):
    done = cnnc(["check", "zoo/resnet18.cnn", "zoo/families/../vgg16.cnn"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == ["ok: resnet18: [3, 224, 224] → [1000]", "ok: vgg16: [3, 224, 224] → [1000]"]
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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "60840\n"


# ---------------------------------------------------------------------------------------------
# check: several files, stdin


NET = "network N {\n    input [3, 8, 8]\n    return in -> c: Conv(4, 3, pad = 1)\n}\n"


def test_check_several_files_and_stdin(tmp_path):
    (tmp_path / "mine.cnn").write_text(NET)
    done = cnnc(["check", "lenet5", "mine.cnn", "inception_module:naive", "-"], cwd=tmp_path,
                stdin=NET.replace("network N", "network fromstdin"))
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == ["ok: lenet5: [1, 32, 32] → [10]", "ok: N: [3, 8, 8] → [4, 8, 8]",
                                     "ok: naive: [256, 28, 28] → [672, 28, 28]",
                                     "ok: fromstdin: [3, 8, 8] → [4, 8, 8]"]


def test_check_several_files_reports_every_error(tmp_path, capsys):
    (tmp_path / "good.cnn").write_text(NET)
    (tmp_path / "bad.cnn").write_text(NET.replace("Conv(4, 3, pad = 1)", "Conv(4, 11)"))
    (tmp_path / "broken.cnn").write_text("network {")
    code, out, err = run_cli(["check", tmp_path / "bad.cnn", tmp_path / "good.cnn", tmp_path / "broken.cnn",
                              "--format", "concise"], capsys)
    assert code == 1
    assert networks(out) == ["ok: N: [3, 8, 8] → [4, 8, 8]"]
    assert "bad.cnn:3:21: error[E0303]" in err and "broken.cnn:1:" in err
    assert "found 2 errors in 2 files" in err


def test_stdin_imports_resolve_from_the_working_directory(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text("block Two(c) {\n    return in -> Conv(c, 3, pad = 1) -> ReLU\n}\n")
    program = 'import "lib/blocks.cnn"\nnetwork N {\n    input [3, 8, 8]\n    return in -> Two(4)\n}\n'
    done = cnnc(["check", "-"], cwd=tmp_path, stdin=program)
    assert done.returncode == 0, done.stderr
    assert networks(done.stdout) == ["ok: N: [3, 8, 8] → [4, 8, 8]"]
    done = cnnc(["check", "-"], cwd=tmp_path, stdin="network N {\n    input [3, 8, 8]\n    return in -> Conv(4, 11)\n}\n")
    assert done.returncode == 1 and "--> <stdin>:3:18" in done.stderr


def test_stdin_that_is_not_text(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import sys; from cnnc.cli import main; sys.exit(main(['check', '-']))"],
                          input=b"network \xff", capture_output=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and b"stdin is not UTF-8 text: byte 0xff at offset 8" in done.stderr


# ---------------------------------------------------------------------------------------------
# The smallest input a network accepts


@pytest.mark.parametrize("args, smallest", [
    (["check", "vgg16", "--input", "3,16,16"], "[3, 32, 32]"),  # five 2×2 pools
    (["summary", "vgg16", "--input", "3,20,40"], "[3, 32, 32]"),
    (["check", "alexnet", "--input", "3,32,32"], "[3, 63, 63]"),
])
def test_too_small_input_names_the_smallest(args, smallest, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "error[E0303]" in err
    assert f"= help: the smallest input this network accepts is {smallest}" in err


def test_no_smallest_input_for_other_errors(tmp_path, capsys):
    f = tmp_path / "two.cnn"  # too small and a wrong Linear: a larger input alone would not do
    f.write_text("network N {\n    input [3, 8, 8]\n    a = in -> Conv(4, 11)\n"
                 "    return in -> Flatten -> Linear(4) -> Conv(2, 1)\n}\n")
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
