"""Study and run folders are data: nothing cnnc writes goes through a link planted there, a study
file is opened only as itself (read-only for a report), damaged or crafted studies exit 1, and what
a study holds reaches neither a spreadsheet as a formula nor the terminal as control characters."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from conftest import ROOT, run_cli

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
SEARCH = ["search", TINY, "--evaluator", "proxy", "--device", "cpu"]


@pytest.fixture(scope="module")
def made_study(tmp_path_factory):
    """A study of 3 proxy trials, made once; each test copies it (`study`)."""
    import contextlib
    import io

    from cnnc.cli import main

    out = tmp_path_factory.mktemp("made") / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*SEARCH, "--trials", "3", "--out", out]) == 0
    return out


@pytest.fixture
def study(made_study, tmp_path):
    folder = tmp_path / "shared"
    shutil.copytree(made_study, folder)
    connection = sqlite3.connect(
        folder / "study.db"
    )  # the maker's engine may hold a WAL: fold it in
    connection.execute("pragma wal_checkpoint(truncate)")
    connection.close()
    return folder


def victim(tmp_path, name: str = "victim"):
    path = tmp_path / name
    path.write_text("precious\n")
    return path


def plant(folder, name: str, target) -> None:
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to(target)


def assert_user_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert err.startswith("error: ") and "\n  = help: " in err, err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


# ---------------------------------------------------------------------------------------------
# Nothing is written through a planted link


def test_report_of_a_shared_folder_replaces_planted_links(study, tmp_path, capsys):
    bashrc = victim(tmp_path, "bashrc")
    picture = victim(tmp_path, "picture")
    plant(study, "trials.csv", bashrc)
    plant(study, "history.png", picture)
    plant(study, "best.cnn", tmp_path / "nowhere" / "x.cnn")  # a dangling link: not created
    code, _out, err = run_cli(["search-report", study], capsys)
    assert code == 0, err
    assert bashrc.read_text() == "precious\n" and picture.read_text() == "precious\n"
    assert not (tmp_path / "nowhere").exists()
    for name in ("trials.csv", "history.png", "best.cnn"):
        assert not (study / name).is_symlink() and (study / name).stat().st_size > 0
    assert (
        f"note: `{study / 'trials.csv'}` was a link (to `{bashrc}`): cnnc replaced the link" in err
    )
    assert f"note: `{study / 'history.png'}` was a link (to `{picture}`)" in err
    # no temporaries (the search that made the study left its lock file, `.cnnc-search.lock`)
    assert sorted(p.name for p in study.iterdir() if p.name.startswith(".")) == [
        ".cnnc-search.lock"
    ]


def test_search_resume_replaces_planted_links(study, tmp_path, capsys):
    targets = {name: victim(tmp_path, name) for name in ("trials.csv", "best.cnn", "history.png")}
    for name, target in targets.items():
        plant(study, name, target)
    code, _, err = run_cli([*SEARCH, "--trials", "4", "--out", study], capsys)
    assert code == 0, err
    assert all(t.read_text() == "precious\n" for t in targets.values())
    assert "network best" in (study / "best.cnn").read_text()
    assert err.count("was a link (to `") == 3


def test_train_resume_replaces_planted_links(tmp_path, capsys):
    net = tmp_path / "net.cnn"
    net.write_text(
        "network net {\n    input [1, 8, 8]\n    return in -> Conv(4, 3) -> ReLU -> Flatten -> Linear(10)\n}\n"
    )
    out = tmp_path / "run"
    common = [
        "train",
        net,
        "--data",
        "digits",
        "--out",
        out,
        "--device",
        "cpu",
        "--batch-size",
        "256",
    ]
    assert run_cli([*common, "--epochs", "1"], capsys)[0] == 0
    names = ("metrics.csv", "curves.png", "model.pt", "run.json", "network.cnn")
    targets = {name: victim(tmp_path, name) for name in names}
    for name, target in targets.items():
        plant(out, name, target)
    code, _, err = run_cli([*common, "--epochs", "2", "--resume"], capsys)
    assert code == 0, err
    assert all(t.read_text() == "precious\n" for t in targets.values())
    assert all(not (out / n).is_symlink() for n in names)
    assert err.count("was a link (to `") == len(names)
    assert json.loads((out / "run.json").read_text())["epochs"] == 2


def test_a_linked_subfolder_of_a_run_folder_is_not_written_through(tmp_path, capsys):
    """A program's imports are copied beside network.cnn: a planted `lib -> elsewhere` is refused."""
    (tmp_path / "src" / "lib").mkdir(parents=True)
    (tmp_path / "src" / "lib" / "parts.cnn").write_text(
        "block Head() {\n    return in -> Flatten -> Linear(10)\n}\n"
    )
    net = tmp_path / "src" / "net.cnn"
    net.write_text(
        'import "lib/parts.cnn"\nnetwork net {\n    input [1, 8, 8]\n    return in -> Head()\n}\n'
    )
    out = tmp_path / "run"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "lib").symlink_to(elsewhere)
    code, _, err = run_cli(
        [
            "train",
            net,
            "--data",
            "digits",
            "--out",
            out,
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--batch-size",
            "256",
        ],
        capsys,
    )
    assert (
        code == 1 and f"error: cannot write `{out}`: {out / 'lib'} is a link, not a folder" in err
    )
    assert list(elsewhere.iterdir()) == []


def test_compile_render_and_fmt_replace_links(tmp_path, capsys):
    target = victim(tmp_path)
    for args, name in (
        (["compile", "lenet5", "-o"], "lenet5.py"),
        (["render", "lenet5", "-o"], "lenet5.dot"),
    ):
        (tmp_path / name).symlink_to(target)
        code, _, err = run_cli([*args, tmp_path / name], capsys)
        assert code == 0, err
        assert not (tmp_path / name).is_symlink() and target.read_text() == "precious\n"
        assert f"`{tmp_path / name}` was a link" in err
    source = tmp_path / "real.cnn"
    source.write_text("network n {\n  input [1, 8, 8]\n  return in -> Flatten -> Linear(10)\n}\n")
    (tmp_path / "n.cnn").symlink_to(source)
    code, _, err = run_cli(["fmt", "--write", tmp_path / "n.cnn"], capsys)
    assert code == 0 and "was a link" in err and not (tmp_path / "n.cnn").is_symlink()
    assert source.read_text().startswith(
        "network n {\n  input"
    )  # what the link pointed to: untouched


# ---------------------------------------------------------------------------------------------
# Study files are opened only as themselves, and read-only by a report


def other_database(path):
    with sqlite3.connect(path) as connection:
        connection.execute("create table accounts (name text, balance real)")
        connection.execute("insert into accounts values ('me', 12.5)")
    connection.close()
    return path


def assert_untouched(db) -> None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        tables = [
            t for (t,) in connection.execute("select name from sqlite_master where type = 'table'")
        ]
        mode = connection.execute("pragma journal_mode").fetchone()[0]
    connection.close()
    assert tables == ["accounts"] and mode == "delete"


@pytest.mark.parametrize("command", ["search-report", "search"])
def test_a_study_file_linked_to_another_database_is_refused(study, tmp_path, capsys, command):
    db = other_database(tmp_path / "mine.db")
    plant(study, "study.db", db)
    args = ["search-report", study] if command == "search-report" else [*SEARCH, "--out", study]
    code, _out, err = run_cli(args, capsys)
    assert_user_error(
        code,
        err,
        f"the study file `{study / 'study.db'}` is a link (to `{db}`)",
        "copy the real file",
    )
    assert_untouched(db)


@pytest.mark.parametrize("command", ["search-report", "search"])
def test_another_database_in_place_of_a_study_is_never_migrated(tmp_path, capsys, command):
    folder = tmp_path / "run"
    folder.mkdir()
    db = other_database(folder / "study.db")
    args = ["search-report", folder] if command == "search-report" else [*SEARCH, "--out", folder]
    code, _, err = run_cli(args, capsys)
    assert_user_error(
        code, err, "is a SQLite database, but not an Optuna study (it holds the tables `accounts`)"
    )
    assert_untouched(db)


@pytest.mark.parametrize("side", ["study.db-wal", "study.db-journal", "study.db.cnnc-lock"])
def test_a_link_beside_the_study_file_is_refused(study, tmp_path, capsys, side):
    target = victim(tmp_path)
    plant(study, side, target)
    code, _, err = run_cli([*SEARCH, "--out", study], capsys)
    assert_user_error(
        code, err, f"`{study / side}` beside the study file `study.db` is a link", "remove"
    )
    assert target.read_text() == "precious\n"


def test_a_fifo_as_the_study_file_is_refused_without_blocking(tmp_path, capsys):
    import os

    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / "study.journal")
    code, _, err = run_cli(["search-report", folder], capsys)
    assert_user_error(code, err, "study.journal` is a fifo, not a file")


def test_a_report_leaves_the_study_file_as_it_was(study, tmp_path, capsys):
    """Read-only: not a byte of the study changes, and it is not switched to another journal mode."""
    with sqlite3.connect(study / "study.db") as connection:
        connection.execute("pragma journal_mode = delete")
    connection.close()
    before = (study / "study.db").read_bytes()
    code, _, err = run_cli(["search-report", study, "--out", tmp_path / "report"], capsys)
    assert code == 0, err
    assert (study / "study.db").read_bytes() == before
    assert not (study / "study.db-wal").exists()


# ---------------------------------------------------------------------------------------------
# Damaged or crafted studies exit 1


def sql(db, *statements) -> None:
    with sqlite3.connect(db) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


CRAFTED_ROWS = {
    "a state out of range": ["update trials set state = 'EXPLODED' where number = 0"],
    "an attribute that is not JSON": [
        "update trial_user_attributes set value_json = '{oops' where key = 'hash'"
    ],
    "a huge number of params": [
        "update trial_user_attributes set value_json = '1" + "0" * 400 + "' where key = 'params'"
    ],
    "attributes of other types": [
        "update trial_user_attributes set value_json = '[1, 2]' where key = 'decisions'",
        "update trial_user_attributes set value_json = '\"many\"' where key = 'macs'",
        "update trial_user_attributes set value_json = '{\"a\": [1]}' where key = 'proxies'",
        "update study_user_attributes set value_json = '\"x\"' where key = 'settings'",
        "update study_user_attributes set value_json = '[3]' where key = 'trials'",
    ],
    "a value that is text": ["update trial_values set value = 'high'"],
    "an unknown schema version": ["update alembic_version set version_num = 'v99.future'"],
    "a broken datetime": ["update trials set datetime_start = 'yesterday'"],
    "a distribution that is not JSON": ["update trial_params set distribution_json = 'nope'"],
    "a table without its columns": ["drop table trial_values", "create table trial_values (x)"],
    "a study name that is not text": ["update studies set study_name = x'fffe'"],
    "no studies table": ["drop table studies"],
    "a trial number that is text, a negative target": [
        "delete from trials where number <> 0",  # one trial left: nothing to sort the text against
        "update trials set number = 'a' || char(10) || 'b' || char(13) || 'c' where number = 0",
        "update study_user_attributes set value_json = '-1000000000000000000000000000000' where key = 'trials'",
    ],
}


@pytest.mark.parametrize("case", sorted(CRAFTED_ROWS))
def test_a_crafted_sqlite_study_is_a_user_error_or_read(study, tmp_path, capsys, case):
    sql(study / "study.db", *CRAFTED_ROWS[case])
    code, _out, err = run_cli(["search-report", study, "--out", tmp_path / "r"], capsys)
    assert code in (0, 1), err
    assert "internal error" not in err and "Traceback" not in err
    assert not [c for c in _out + err if ord(c) < 32 and c != "\n"]  # the study's text never raw
    assert " of -" not in _out  # a target that is no count is not shown
    if code == 1:
        assert err.startswith("error: ") and err.count("\n") == 2, err  # one line and its help


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 3],  # truncated
        lambda b: b[:100] + b"\x00" * 2000 + b[2100:],  # a page of zeros
        lambda b: b[:16] + bytes(reversed(b[16:4096])) + b[4096:],  # garbage after the header
        lambda b: b"",  # empty
    ],
    ids=["truncated", "zeroed", "garbage", "empty"],
)
def test_a_damaged_sqlite_study_exits_1(study, tmp_path, capsys, damage):
    db = study / "study.db"
    db.write_bytes(damage(db.read_bytes()))
    code, _, err = run_cli(["search-report", study, "--out", tmp_path / "r"], capsys)
    assert_user_error(code, err)


def test_a_table_name_that_is_not_utf8_exits_1(study, tmp_path, capsys):
    """Found by the study fuzzer: SQLite's own list of tables is read before Optuna's."""
    sql(
        study / "study.db",
        "create table zz (x)",
        "pragma writable_schema = on",
        "update sqlite_master set name = cast(x'7acb' as text) where name = 'zz'",
    )
    code, _, err = run_cli(["search-report", study, "--out", tmp_path / "r"], capsys)
    assert_user_error(
        code, err, "study.db` cannot be read as SQLite: 'utf-8' codec can't decode byte 0xcb"
    )


def journal_study(folder):
    import optuna

    from cnnc.search import storage

    folder.mkdir()
    url = f"journal:///{folder / 'study.journal'}"
    made = optuna.create_study(storage=storage.open_storage(url, 10), study_name="j")
    trial = made.ask()
    trial.set_user_attr("reason", "fine")
    made.tell(trial, 1.0)
    return folder / "study.journal"


@pytest.mark.parametrize(
    "lines",
    [
        [b"{not json\n"],
        [b'{"op_code": 999, "worker_id": "w"}\n'],
        [b'{"op_code": 5, "worker_id": "w", "trial_id": 12345, "user_attr": {"a": 1}}\n'],
        [b'{"op_code": 0}\n'],
        [b"[1, 2, 3]\n"],
        [b'{"op_code": 4, "worker_id": "w", "trial_id": 0, "state": 77, "values": null}\n'],
    ],
    ids=["bad-json", "unknown-op", "no-such-trial", "missing-fields", "not-an-object", "bad-state"],
)
def test_a_crafted_journal_exits_1(tmp_path, capsys, lines):
    path = journal_study(tmp_path / "run")
    with open(path, "ab") as f:
        f.writelines(lines)
        f.write(b'{"op_code": 5, "worker_id": "w", "trial_id": 0, "user_attr": {"x": 1}}\n')
    code, _, err = run_cli(["search-report", tmp_path / "run", "--out", tmp_path / "r"], capsys)
    assert code in (0, 1), err
    assert "internal error" not in err and "Traceback" not in err


def test_a_journal_line_that_is_not_json_is_named(tmp_path, capsys):
    path = journal_study(tmp_path / "run")
    with open(path, "ab") as f:
        f.write(b"{not json\n" + b'{"op_code": 0}\n')
    code, _, err = run_cli(["search-report", tmp_path / "run", "--out", tmp_path / "r"], capsys)
    assert_user_error(
        code, err, "cannot be read (damaged, or not written by cnnc)", "restore the study"
    )


# ---------------------------------------------------------------------------------------------
# What a study holds stays inert: CSV cells, the terminal, --export


def set_attr(db, number: int, key: str, value) -> None:
    sql(
        db,
        f"update trial_user_attributes set value_json = '{json.dumps(value)}' where key = '{key}' and "
        f"trial_id = (select trial_id from trials where number = {number})",
    )


def test_reasons_and_choice_names_stay_inert(study, tmp_path, capsys):
    db = study / "study.db"
    sql(
        db,
        "insert into trial_user_attributes (trial_id, key, value_json) select trial_id, 'reason', "
        "'\";touch X;# \\u001b[31mred\\u202e\\nnext\"' from trials where number = 0",
    )
    set_attr(
        db, 1, "decisions", {'=HYPERLINK("http://x")': "@SUM(1)", "width\u001b]0;t\u0007": "8"}
    )
    set_attr(db, 2, "status", "-2+3")
    code, out, err = run_cli(["search-report", study], capsys)
    assert code == 0, err
    assert "\x1b" not in out + err and "\u202e" not in out and "\x07" not in out
    assert ";touch X;# \\x1b[31mred\\u202e\\x0anext" in out
    import csv

    with open(study / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert (
        rows[0]["reason"] == ";touch X;# \x1b[31mred\u202e\nnext"
    )  # text, not a formula: kept as is
    assert rows[1]["decisions"].startswith("'=HYPERLINK")
    assert rows[2]["status"] == "'-2+3"


@pytest.mark.parametrize(
    "text, cell",
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\x1bx", "'\x1bx"),
        ("-0.5", "-0.5"),
        ("+3", "+3"),
        ("1e-5", "1e-5"),
        ("-inf", "'-inf"),
        ("width=8; pool=max", "width=8; pool=max"),
        ("", ""),
    ],
)
def test_csv_cells_that_start_as_formulas_are_neutralised(text, cell):
    from cnnc.search.report import cell as csv_cell

    assert csv_cell(text) == cell


def test_export_takes_no_path_from_the_study(study, tmp_path, capsys):
    """A study that names /etc/passwd as its space, and / as an import root: neither is opened."""
    db = study / "study.db"
    sql(
        db,
        "update study_user_attributes set value_json = "
        '\'{"file": "/etc/passwd", "allow_import": ["/"], "objectives": ["naswot"]}\' '
        "where key = 'settings'",
    )
    code, _, err = run_cli(
        ["search-report", study, "--export", "0", "-o", tmp_path / "t.cnn"], capsys
    )
    assert_user_error(
        code,
        err,
        "records its space as `/etc/passwd`, outside the study's folder",
        "--space /etc/passwd",
    )
    assert "root:" not in err
    code, _out, err = run_cli(
        ["search-report", study, "--export", "0", "--space", TINY, "-o", tmp_path / "t.cnn"], capsys
    )
    assert code == 0, err
    assert "trial 0 of study `tiny`" in (tmp_path / "t.cnn").read_text()


def test_export_reads_a_space_inside_the_study_folder(study, tmp_path, capsys):
    shutil.copy(TINY, study / "tiny.cnn")
    sql(
        study / "study.db",
        "update study_user_attributes set value_json = "
        f"'{json.dumps({'file': str(study / 'tiny.cnn'), 'objectives': ['naswot']})}' "
        "where key = 'settings'",
    )
    code, out, err = run_cli(
        ["search-report", study, "--export", "1", "-o", tmp_path / "one.cnn"], capsys
    )
    assert code == 0, err
    assert out == f"wrote {tmp_path / 'one.cnn'}\n"


def test_export_of_a_trial_whose_records_do_not_match_is_a_user_error(study, tmp_path, capsys):
    set_attr(study / "study.db", 0, "hash", "0" * 64)
    code, _, err = run_cli(
        ["search-report", study, "--export", "0", "-o", tmp_path / "t.cnn"], capsys
    )
    assert (
        code == 1
        and "error[E0608]: replaying trial 0's decisions gives another architecture" in err
    )


def test_a_study_recorded_with_text_hashes_still_exports(study, tmp_path, capsys):
    """Studies made before architectures were keyed up to isomorphism hold sha256 of the graph's
    text: their trials still replay to their architecture."""
    from cnnc.search.driver import load_study
    from cnnc.search.space import fixed, load_space, text_hash

    decisions = (
        load_study(f"sqlite:///{study / 'study.db'}", None).trials[0].user_attrs["decisions"]
    )
    member = load_space(TINY, input_shape=(1, 8, 8), args={"classes": 10}).member(fixed(decisions))
    set_attr(study / "study.db", 0, "hash", text_hash(member.graph))
    code, _, err = run_cli(
        ["search-report", study, "--export", "0", "-o", tmp_path / "t.cnn"], capsys
    )
    assert code == 0, err


ESCAPING = 'network esc {\n    input [1, 8, 8]\n    return in -> Conv(choice(4, 8, name = "w\\u001b[31m\\u202e"), 3) -> Flatten -> Linear(10)\n}\n'


def test_choice_names_reach_the_terminal_escaped(tmp_path, capsys):
    space = tmp_path / "esc.cnn"
    space.write_text(ESCAPING)
    code, out, err = run_cli(["space", space, "--samples", "2"], capsys)
    assert code == 0 and "  w\\x1b[31m\\u202e  4 | 8" in out
    code, out, err = run_cli(
        [
            "search",
            space,
            "--evaluator",
            "proxy",
            "--device",
            "cpu",
            "--trials",
            "2",
            "--out",
            tmp_path / "run",
        ],
        capsys,
    )
    assert code == 0, err
    assert "[w\\x1b[31m\\u202e=" in out and "\x1b" not in out and "\u202e" not in out + err
    code, out, err = run_cli(["search-report", tmp_path / "run"], capsys)
    assert code == 0 and "\x1b" not in out and "\u202e" not in out


def test_checkpoint_keys_reach_the_terminal_escaped(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    net = tmp_path / "net.cnn"
    net.write_text(
        "network net {\n    input [1, 8, 8]\n    return in -> Flatten -> fc: Linear(10)\n}\n"
    )
    weights = tmp_path / "w.pt"
    torch.save(
        {"fc.weight": torch.zeros(10, 64), "evil\x1b]0;title\x07\u202e": torch.zeros(1)}, weights
    )
    code, _, err = run_cli(
        ["compile", net, "--weights", weights, "--weights-partial", "-o", tmp_path / "n.pt"], capsys
    )
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "evil\\x1b]0;title\\x07\\u202e" in err


def test_onnx_and_its_weights_file_replace_links_and_keep_their_names(tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    target = victim(tmp_path)
    (tmp_path / "m.onnx").symlink_to(target)
    (tmp_path / "m.onnx.data").symlink_to(target)
    code, _, err = run_cli(["compile", "lenet5", "-o", tmp_path / "m.onnx"], capsys)
    assert code == 0, err
    assert target.read_text() == "precious\n" and not (tmp_path / "m.onnx").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"victim", "m.onnx", *(["m.onnx.data"] if (tmp_path / "m.onnx.data").exists() else [])}
    )  # no temporaries left
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.run(None, {"x": np.zeros((2, 1, 32, 32), np.float32)})[0].shape == (2, 10)


@pytest.mark.parametrize(
    "case", ["a state out of range", "an attribute that is not JSON", "attributes of other types"]
)
def test_search_resuming_a_crafted_study_is_a_user_error(study, capsys, case):
    sql(study / "study.db", *CRAFTED_ROWS[case])
    code, _, err = run_cli([*SEARCH, "--trials", "4", "--out", study], capsys)
    assert code in (0, 1) and "internal error" not in err, err
    if code == 1:
        assert "error: the study in `sqlite:///" in err or "error[E0604]" in err, err


def test_search_resuming_a_crafted_journal_is_a_user_error(tmp_path, capsys):
    path = journal_study(tmp_path / "run")
    with open(path, "ab") as f:
        f.write(b"{not json\n" + b'{"op_code": 0}\n')
    code, _, err = run_cli([*SEARCH, "--out", tmp_path / "run", "--study", "j"], capsys)
    assert_user_error(code, err, "cannot be read (damaged, or not written by cnnc)")


def test_a_study_file_over_the_bound_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch):
    from cnnc.compiler import limits
    from cnnc.search import studyfiles

    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / "study.journal", "wb") as f:
        f.truncate(studyfiles.MAX_STUDY_BYTES + 1)  # sparse: no disk spent
    code, _, err = run_cli(["search-report", folder], capsys)
    most = min(studyfiles.MAX_STUDY_BYTES, limits.machine_memory() // 40)
    assert_user_error(code, err, f"over the {most:,} a study may hold on this machine")
    # on a machine of 4 GiB, a study of 120 MB would take up to 4.8 GB read: refused
    monkeypatch.setattr(limits, "machine_memory", lambda: 4 << 30)
    assert studyfiles.most_bytes() == (4 << 30) // 40
    with open(folder / "study.journal", "r+b") as f:
        f.truncate(120_000_000)
    code, _, err = run_cli(["search-report", folder], capsys)
    assert_user_error(
        code,
        err,
        f"holds 120,000,000 bytes, over the {(4 << 30) // 40:,} a study may hold on this machine "
        "(read, a study takes up to 40 times its bytes in memory)",
    )


def test_the_study_fuzzer_ends_its_cases_as_expected(tmp_path):
    """A few cases of `fuzz/study_mutants.py` (links, FIFOs, crafted rows, damaged bytes, journal
    lines) through search-report and train --resume: each is reported or refused, none is a bug."""
    import sys

    sys.path.insert(0, str(ROOT / "fuzz"))
    import study_mutants
    import worker

    for folder in ("spaces", "families"):
        shutil.copytree(ROOT / "zoo" / folder, tmp_path / folder)
    endings = []
    for seed in range(8):
        recipe, argv, victims = study_mutants.prepare(tmp_path, seed)
        outcome, detail = study_mutants.classify(*worker.quiet_cli(argv), victims)
        assert not outcome.startswith("bug"), (seed, recipe, detail)
        endings.append(outcome)
    assert set(endings) == {"reported", "refused"}


# ---------------------------------------------------------------------------------------------
# The checks live with the storage: the search refuses (`Refused`), the commands say it


@pytest.mark.parametrize(
    "make, url, said",
    [
        (lambda p: p.mkdir(), "sqlite:///{p}", "the study file `{p}` is a folder"),
        (
            lambda p: p.write_bytes(b"not a database at all"),
            "sqlite:///{p}",
            "the study file `{p}` is not a SQLite database (damaged, or another kind of file)",
        ),
        (lambda p: None, "nosuchdb://host/x", "--storage `nosuchdb://host/x`: `nosuchdb` is not"),
        (lambda p: None, "postgresql://", None),  # parses: PostgreSQL's driver is there or named
    ],
)
def test_the_search_refuses_a_storage_before_the_work(tmp_path, make, url, said):
    from cnnc.search import storage, studyfiles

    path = tmp_path / "study.db"
    make(path)
    url = url.format(p=path)
    if said is None:
        try:
            storage.check_storage(url)
        except studyfiles.Refused as exc:
            assert isinstance(exc.__cause__, ImportError) and "driver" in str(exc)
        return
    with pytest.raises(studyfiles.Refused) as info:
        storage.check_storage(url)
    assert str(info.value).startswith(said.format(p=path)) and info.value.helps


def test_a_storage_failing_in_use_is_refused_and_a_query_error_stays_internal():
    import sqlalchemy.exc

    from cnnc.search import storage, studyfiles

    locked = sqlalchemy.exc.OperationalError("select", {}, sqlite3.OperationalError("locked"))
    with pytest.raises(studyfiles.Refused) as info, storage.storage_errors("sqlite:///s.db"):
        raise locked
    assert str(info.value) == "the study storage `sqlite:///s.db` failed: locked"
    assert info.value.helps[0].startswith("check that the database is reachable")
    wrong = sqlalchemy.exc.ProgrammingError("select", {}, sqlite3.ProgrammingError("bad"))
    with pytest.raises(sqlalchemy.exc.ProgrammingError), storage.storage_errors("sqlite:///s.db"):
        raise wrong


def test_the_commands_say_a_refused_storage_as_a_user_error(tmp_path):
    from cnnc.commands import files
    from cnnc.commands.common import UserError

    (tmp_path / "study.db").mkdir()
    with pytest.raises(UserError) as info:
        files.check_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert "is a folder" in str(info.value)


@pytest.mark.parametrize("name", ["trials.csv", "best.cnn", "retrain.csv"])
def test_a_folder_where_the_search_writes_a_file_is_refused_before_any_work(tmp_path, capsys, name):
    """It ended in exit 70 after the trials ran ('Is a directory'), the summary lost."""
    out = tmp_path / "run"
    (out / name).mkdir(parents=True)
    argv = ["search", TINY, "--evaluator", "proxy", "--device", "cpu", "--trials", "2"]
    code, stdout, err = run_cli([*argv, "--out", out], capsys)
    assert code == 1 and stdout == ""
    assert f"`{out / name}` is a folder, where the search writes its {name}" in err
    assert "help: move it away, or choose another --out" in err
    assert not (out / "study.db").exists()


def test_a_file_that_cannot_be_written_is_named_not_its_temporary():
    from cnnc.commands import files
    from cnnc.commands.common import UserError

    with pytest.raises(UserError) as info, files.writing("run", "--out"):
        raise IsADirectoryError(
            21, "Is a directory", "run/.trials.csv.x1.tmp.csv", None, "run/trials.csv"
        )
    assert str(info.value).startswith("cannot write `run/trials.csv`: Is a directory")


def test_a_study_in_a_folder_cnnc_cannot_write_says_so(tmp_path, monkeypatch):
    """SQLite reads a study in WAL mode through a `-shm` file it makes beside it: on a read-only
    folder the open fails, which said 'unable to open database file' and advised moving the study
    away."""
    import sqlite3

    from cnnc.search import studyfiles

    db = tmp_path / "study.db"
    sqlite3.connect(db).close()

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(studyfiles.sqlite3, "connect", refuse)
    monkeypatch.setattr(studyfiles.os, "access", lambda path, mode: False)
    with pytest.raises(studyfiles.Refused) as info:
        studyfiles._check_tables(db, read_only=True)
    assert "is in a folder cnnc cannot write, and SQLite must write beside a study" in str(
        info.value
    )
