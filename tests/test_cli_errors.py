"""Exit codes tell the truth: every failure caused by the user's files, arguments, data, storage or
file system exits 1 (or 2 for usage) with a one-line `error: …` and a help line, never 70 (the code
for a bug in cnnc). Each case runs the real command line in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

LINUX = sys.platform.startswith("linux")


def assert_user_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert err.startswith("error: ") and "\n  = help: " in err, err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


# ---------------------------------------------------------------------------------------------
# Outputs: -o naming a folder, a path under a file, a place that cannot be written


@pytest.mark.parametrize(
    "command, suffix",
    [("render", ".svg"), ("render", ".dot"), ("compile", ".py"), ("compile", ".pt")],
)
def test_output_that_is_a_folder(command, suffix, tmp_path, capsys):
    folder = tmp_path / f"out{suffix}"
    folder.mkdir()
    code, out, err = run_cli([command, "lenet5", "-o", folder], capsys)
    assert_user_error(code, err, f"`{folder}` is a folder", "-o needs a file name")
    assert out == ""  # refused before any work


@pytest.mark.parametrize(
    "command, name", [("render", "x.dot"), ("compile", "x.py"), ("zoo", "x.png")]
)
def test_output_under_a_file(command, name, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    flag = "--plot" if command == "zoo" else "-o"
    args = (
        [command, flag, blocker / name]
        if command == "zoo"
        else [command, "lenet5", flag, blocker / name]
    )
    code, out, err = run_cli(args, capsys)
    assert_user_error(code, err, "cannot write", f"`{blocker}` is a file, not a folder")
    assert out == ""


def test_zoo_plot_into_a_folder(tmp_path, capsys):
    code, _, err = run_cli(["zoo", "--plot", tmp_path], capsys)
    assert code == 2 and "--plot must end in one of .png" in err
    folder = tmp_path / "chart.png"
    folder.mkdir()
    code, _, err = run_cli(["zoo", "--plot", folder], capsys)
    assert_user_error(code, err, "is a folder, but --plot needs a file name")


@pytest.mark.skipif(not LINUX, reason="/proc refuses new files on Linux only")
@pytest.mark.parametrize(
    "command, name", [("render", "cnnc-test.dot"), ("compile", "cnnc-test.py")]
)
def test_output_where_nothing_can_be_written(command, name, capsys):
    code, _, err = run_cli([command, "lenet5", "-o", Path("/proc") / name], capsys)
    assert_user_error(
        code, err, f"cannot write `/proc/{name}`", "choose a place you can write to with -o"
    )


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
    assert_user_error(
        code, err, "study.db` cannot be read as SQLite: file is not a database", "move it away"
    )


@pytest.mark.parametrize(
    "url, words",
    [
        ("foo://host/db", "`foo` is not a kind of database cnnc knows"),
        ("not a url", "is not a database URL"),
        ("mysql://someone@localhost/db", "its database driver"),
    ],
)
def test_report_with_a_bad_storage_url(url, words, capsys):
    code, _, err = run_cli(["search-report", "--storage", url], capsys)
    assert_user_error(code, err, words, "--storage sqlite:///")


@pytest.fixture
def read_only_study(tmp_path):
    """A study (one trial) in a SQLite file that cannot be written: by its mode, or for root (whom
    modes do not stop) by the immutable flag."""
    import optuna

    folder = tmp_path / "run"
    folder.mkdir()
    db = folder / "study.db"
    study = optuna.create_study(study_name="kept", storage=f"sqlite:///{db}")
    study.tell(study.ask(), 0.5)
    del study
    db.chmod(0o444)
    folder.chmod(0o555)
    immutable = False
    if os.access(db, os.W_OK):
        immutable = (
            subprocess.run(["chattr", "+i", db], capture_output=True, check=False).returncode == 0
        )
        if not immutable or os.access(db, os.W_OK):
            folder.chmod(0o755)
            pytest.skip("cannot make a file read-only here (root without the immutable flag)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", db], check=True)
    folder.chmod(0o755)
    db.chmod(0o644)


def test_report_of_a_read_only_study(read_only_study, tmp_path, capsys):
    """A report only reads: a study it cannot write is reported (into another --out)."""
    code, out, err = run_cli(
        ["search-report", read_only_study, "--out", tmp_path / "report"], capsys
    )
    assert code == 0, err
    assert "study `kept`" in out and "1 trial: 1 complete" in out


def test_search_on_a_read_only_study(read_only_study, capsys):
    code, _, err = run_cli([*SEARCH, "--out", read_only_study, "--study", "kept"], capsys)
    assert_user_error(code, err, "study.db` is read-only", "make the file and its folder writable")


def test_a_study_that_turns_read_only_after_the_check(read_only_study, monkeypatch, capsys):
    """The check before the work can be overtaken (another process, a remount): the storage's own
    error is then the user's too."""
    from cnnc.commands import files

    monkeypatch.setattr(files, "check_storage", lambda url, read_only=False: None)
    code, _, err = run_cli([*SEARCH, "--out", read_only_study], capsys)
    assert_user_error(code, err, "failed: attempt to write a readonly database", "writable")


SEARCH = [
    "search",
    ROOT / "zoo" / "spaces" / "tiny.cnn",
    "--evaluator",
    "proxy",
    "--device",
    "cpu",
    "--trials",
    "1",
]


def test_search_with_a_study_file_that_is_not_a_database(tmp_path, capsys):
    folder = garbage_study(tmp_path / "run")
    code, out, err = run_cli([*SEARCH, "--out", folder], capsys)
    assert_user_error(code, err, "study.db` is not a SQLite database")
    assert out == ""  # refused before the data was loaded


def test_search_with_a_damaged_study(tmp_path, capsys):
    folder = damaged_study(tmp_path / "run")
    code, _, err = run_cli([*SEARCH, "--out", folder], capsys)
    assert_user_error(code, err, "study.db` cannot be read as SQLite: file is not a database")


def test_search_with_a_bad_storage_url_or_out(tmp_path, capsys):
    code, _, err = run_cli(
        [*SEARCH, "--out", tmp_path / "run", "--storage", "foo://host/db"], capsys
    )
    assert_user_error(code, err, "`foo` is not a kind of database")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run_cli([*SEARCH, "--out", blocker], capsys)
    assert_user_error(code, err, f"`{blocker}` is a file, but --out needs a folder")


# ---------------------------------------------------------------------------------------------
# A space too large to count in floats


def test_space_too_large_for_a_float(tmp_path, capsys):
    f = tmp_path / "huge.cnn"
    f.write_text(
        "network huge {\n    input [3, 4, 4]\n"
        "    return in -> [Conv(choice(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), 1) "
        "for i in range(310)] -> Flatten -> Linear(10)\n}\n"
    )
    code, out, err = run_cli(["space", f, "--samples", "2", "--walk-seconds", "0.2"], capsys)
    assert code == 0, err
    assert "≈ 1.00e+310 estimated from random paths" in out  # 10 options, 310 times


@pytest.mark.parametrize(
    "args",
    [
        [
            "compile",
            "lenet5",
            "--seed",
            "99999999999999999999999",
            "-o",
            "lenet5.pt",
        ],  # torch: overflow
        ["search", "lenet5", "--seed", "-1"],  # numpy: 0 … 2³² − 1
        ["space", "lenet5", "--seed", str(2**32)],
    ],
)
def test_seed_out_of_range_is_a_usage_error(args, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--seed: expected a whole number from 0 to 4294967295" in err


def test_space_samples_bounded(capsys):
    code, _, err = run_cli(["space", "spaces/tiny.cnn", "--samples", "99999999999"], capsys)
    assert code == 2 and "--samples must be from 0 to 100,000, but got 99,999,999,999" in err


# ---------------------------------------------------------------------------------------------
# Numeric options out of range: usage errors before any work (they failed each trial, crashed or
# trained nothing)

TINY_SPACE = ROOT / "zoo" / "spaces" / "tiny.cnn"
SEARCH_NUMBERS = ["search", TINY_SPACE, "--data", "digits", "--trials", "2"]
TRAIN_NUMBERS = ["train", "lenet5", "--data", "digits"]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--lr", "-1", "--lr must be a positive number, but got -1"),
        ("--lr", "0", "--lr must be a positive number, but got 0"),
        ("--lr", "nan", "--lr must be a finite number, but got nan"),
        ("--lr", "inf", "--lr must be a finite number, but got inf"),
        ("--label-smoothing", "2", "--label-smoothing must lie in [0, 1), but got 2"),
        ("--label-smoothing", "1", "--label-smoothing must lie in [0, 1), but got 1"),
        ("--label-smoothing", "-0.5", "--label-smoothing must lie in [0, 1), but got -0.5"),
        ("--label-smoothing", "nan", "--label-smoothing must be a finite number, but got nan"),
        (
            "--batch-size",
            "1",
            "--batch-size must be at least 2 (BatchNorm needs batches of two), but got 1",
        ),
        ("--epochs", "0", "--epochs must be at least 1, but got 0"),
        ("--threads", "0", "--threads must be at least 1, but got 0"),
        (
            "--threads",
            "100000",
            "--threads must be at most 8 (4 per CPU; this machine has 2), but got 100,000",
        ),
    ],
)
@pytest.mark.parametrize("command", [SEARCH_NUMBERS, TRAIN_NUMBERS], ids=["search", "train"])
def test_numeric_option_out_of_range(command, flag, value, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, out, err = run_cli([*command, "--out", tmp_path / "run", flag, value], capsys)
    assert (code, out, err) == (2, "", f"cnnc {command[0]}: {message}\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command, args, message",
    [
        (SEARCH_NUMBERS, ["--timeout", "nan"], "--timeout must be a finite number, but got nan"),
        (SEARCH_NUMBERS, ["--timeout", "inf"], "--timeout must be a finite number, but got inf"),
        (SEARCH_NUMBERS, ["--timeout", "-1"], "--timeout must be a positive number, but got -1"),
        (SEARCH_NUMBERS, ["--timeout", "0"], "--timeout must be a positive number, but got 0"),
        (SEARCH_NUMBERS, ["--heartbeat", "0"], "--heartbeat must be at least 1, but got 0"),
        (
            SEARCH_NUMBERS,
            ["--heartbeat", "99999999999"],
            "--heartbeat must be at most 86,400 seconds (a day), but got 99,999,999,999",
        ),
        (SEARCH_NUMBERS, ["--workers", "0"], "--workers must be at least 1, but got 0"),
        (
            SEARCH_NUMBERS,
            ["--workers", "100000"],
            "--workers must be at most 8 (4 per CPU; this machine has 2), but got 100,000",
        ),
        (TRAIN_NUMBERS, ["--weight-decay", "-1"], "--weight-decay must be 0 or more, but got -1"),
        (
            TRAIN_NUMBERS,
            ["--weight-decay", "nan"],
            "--weight-decay must be a finite number, but got nan",
        ),
        (
            TRAIN_NUMBERS,
            ["--weight-decay", "inf"],
            "--weight-decay must be a finite number, but got inf",
        ),
        (TRAIN_NUMBERS, ["--warmup", "-1"], "--warmup must be 0 or more, but got -1"),
        (TRAIN_NUMBERS, ["--warmup", "nan"], "--warmup must be a finite number, but got nan"),
        (
            TRAIN_NUMBERS,
            ["--epochs", "2", "--warmup", "2"],
            "--warmup must be below --epochs (2), but got 2",
        ),
    ],
)
def test_an_option_of_one_command_out_of_range(
    command, args, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, out, err = run_cli([*command, "--out", tmp_path / "run", *args], capsys)
    assert (code, out, err) == (2, "", f"cnnc {command[0]}: {message}\n")


@pytest.mark.parametrize(
    "value, message",
    [
        ("nan", "--walk-seconds must be a finite number, but got nan"),
        ("inf", "--walk-seconds must be a finite number, but got inf"),
        ("-1", "--walk-seconds must be 0 or more, but got -1"),
    ],
)
def test_space_walk_seconds_out_of_range(value, message, capsys):
    code, out, err = run_cli(["space", TINY_SPACE, "--walk-seconds", value], capsys)
    assert (code, out, err) == (2, "", f"cnnc space: {message}\n")


@pytest.mark.parametrize("value", ["inf", "nan", "1.5Mx"])
def test_search_count_that_is_no_number(value, tmp_path, capsys):
    code, _, err = run_cli([*SEARCH_NUMBERS, "--out", tmp_path, "--max-params", value], capsys)
    assert code == 2
    assert err.endswith(
        "cnnc search: error: argument --max-params: expected a count such as 200K, 1.5M or "
        f"2000000, but got '{value}'\n"
    )
