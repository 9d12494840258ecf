"""Study and run folders for the fuzzer: damaged, crafted and booby-trapped copies of a real SQLite
study, a journal study, a one-shot (supernet) study and a `cnnc train` run folder, driven through
`search-report` (and `--export`), a resumed one-shot search (its study copied into memory and
written back) and `train --resume`.

`seeds(box)` makes the four folders once per worker (before the audit hook watches). `run_case(box,
seed)` copies one, applies a few mutations chosen by `random.Random(seed)` (so a saved case is the
seed alone), runs the command in-process and classifies the ending:
- expected: `reported` (exit 0), `refused` (exit 1 with `error: ` and a help line);
- `bug:internal` (exit 70 or an escaping exception), `bug:diagnostics` (a raw control or bidi
  character on stdout or stderr), `bug:write-through` (a file a planted link points to changed),
  `bug:error-format` (exit 1 without the one-line `error:` form or a diagnostic).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
from pathlib import Path

RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
VICTIM_TEXT = "precious\n"
NET = "network net {\n    input [1, 8, 8]\n    return in -> Conv(4, 3) -> ReLU -> Flatten -> Linear(10)\n}\n"
TINY_SPACE = "spaces/tiny.cnn"  # in the sandbox's copy of the zoo
ODD_VALUES = [
    10**400,
    -(10**30),
    1e308,
    float("nan"),
    float("inf"),
    -1,
    0,
    True,
    None,
    "",
    "x" * 5000,
    ";touch X;#",
    '=HYPERLINK("http://x")',
    "@SUM(A1)",
    "\x1b[31mred\u202e",
    "a\nb\rc",
    [1, [2, [3]]],
    {"a": {"b": None}},
    [],
    {},
    "/etc/passwd",
    "../../x",
    3.5,
]
STUDY_KEYS = ("settings", "binding", "space", "trials")
TRIAL_KEYS = (
    "status",
    "reason",
    "decisions",
    "hash",
    "params",
    "macs",
    "seconds",
    "proxies",
    "reused_from",
    "history",
    "infeasible",
    "worker",
)


def seeds(box: Path) -> Path:
    """Make `box/seeds/{sqlite,journal,run}` with cnnc itself (in-process); returns the folder."""
    import contextlib
    import io

    from cnnc.cli import main

    done = box / "seeds"
    if done.exists():
        return done
    root = (
        box / "seeds.making"
    )  # renamed when whole: a worker killed meanwhile leaves no half seeds
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    common = [
        "search",
        str(box / TINY_SPACE),
        "--evaluator",
        "proxy",
        "--device",
        "cpu",
        "--trials",
        "3",
    ]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*common, "--out", str(root / "sqlite")]) == 0
        assert (
            main(
                [
                    *common,
                    "--out",
                    str(root / "journal"),
                    "--storage",
                    f"journal:///{root / 'journal' / 'study.journal'}",
                ]
            )
            == 0
        )
        shot = ["--evaluator", "supernet", "--epochs", "1", "--out", str(root / "oneshot")]
        assert main([*common[:2], *common[4:], *shot]) == 0
        (root / "net.cnn").write_text(NET)
        assert (
            main(
                [
                    "train",
                    str(root / "net.cnn"),
                    "--data",
                    "digits",
                    "--out",
                    str(root / "run"),
                    "--epochs",
                    "1",
                    "--device",
                    "cpu",
                    "--batch-size",
                    "256",
                ]
            )
            == 0
        )
    _fold_wal(root / "sqlite" / "study.db")
    _fold_wal(root / "oneshot" / "study.db")
    root.rename(done)
    return done


def _fold_wal(db: Path) -> None:
    connection = sqlite3.connect(db)
    connection.execute("pragma wal_checkpoint(truncate)")
    connection.close()


# ---------------------------------------------------------------------------------------------
# Mutations


def _sql_attr(rng: random.Random, db: Path) -> str:
    table, keys = rng.choice(
        [("trial_user_attributes", TRIAL_KEYS), ("study_user_attributes", STUDY_KEYS)]
    )
    key, value = rng.choice(keys), rng.choice(ODD_VALUES)
    text = (
        json.dumps(value)
        if rng.random() < 0.8
        else rng.choice(["{oops", "", "nul\x00l", "[" * 3000])
    )
    _sql(db, f"update {table} set value_json = ? where key = ?", (text, key))
    return f"{table}.{key} = {text[:60]!r}"


def _sql_column(rng: random.Random, db: Path) -> str:
    table, column = rng.choice(
        [
            ("trials", "state"),
            ("trials", "number"),
            ("trials", "datetime_start"),
            ("trial_values", "value"),
            ("trial_values", "value_type"),
            ("trial_params", "distribution_json"),
            ("trial_params", "param_value"),
            ("studies", "study_name"),
            ("study_directions", "direction"),
            ("alembic_version", "version_num"),
            ("version_info", "schema_version"),
        ]
    )
    value = rng.choice(ODD_VALUES[:-3] + ["EXPLODED", "yesterday", b"\xff\xfe"])
    if isinstance(value, (list, dict)) or value is None:
        value = json.dumps(value)
    if isinstance(value, int) and abs(value) > 2**63:
        value = str(value)
    _sql(db, f"update {table} set {column} = ?", (value,))
    return f"{table}.{column} = {value!r}"[:100]


def _sql_schema(rng: random.Random, db: Path) -> str:
    table = rng.choice(
        ["trials", "studies", "trial_values", "version_info", "alembic_version", "trial_params"]
    )
    if rng.random() < 0.5:
        _sql(db, f"drop table {table}")
        return f"drop {table}"
    _sql(db, "create table accounts (name text)")
    return "a foreign table"


def _sql(db: Path, statement: str, params=()) -> None:
    if db.is_symlink() or not db.is_file():  # planted by an earlier step: left as it is
        return
    connection = sqlite3.connect(db)
    try:
        connection.execute(statement, params)
        connection.commit()
    except (
        sqlite3.Error,
        ValueError,
    ):  # a database damaged by an earlier step (bytes that are not UTF-8)
        pass
    finally:
        connection.close()


def _bytes(rng: random.Random, path: Path) -> str:
    if (
        path.is_symlink() or not path.is_file()
    ):  # planted by an earlier step: not written through here
        return f"{path.name} left as planted"
    data = bytearray(path.read_bytes())
    if rng.random() < 0.4 and data:
        del data[rng.randrange(len(data)) :]
        what = "truncated"
    else:
        for _ in range(rng.randint(1, 40)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        what = "bytes flipped"
    path.write_bytes(bytes(data))
    return f"{path.name} {what}"


def _journal_lines(rng: random.Random, path: Path) -> str:
    if path.is_symlink() or not path.is_file():
        return f"{path.name} left as planted"
    lines = path.read_bytes().splitlines(keepends=True) or [b"\n"]
    k = rng.randrange(len(lines))
    choice = rng.randrange(5)
    if choice == 0:
        del lines[k]
    elif choice == 1:
        lines.insert(k, lines[rng.randrange(len(lines))])
    elif choice == 2:
        lines[k] = lines[k][: rng.randrange(max(1, len(lines[k])))] + b"\n"
    else:
        record = {
            "op_code": rng.randrange(-1, 14),
            "worker_id": "w",
            "trial_id": rng.choice([0, 1, 99, -1]),
            "study_id": rng.choice([0, 7]),
            "user_attr": {rng.choice(TRIAL_KEYS): rng.choice(ODD_VALUES[3:])},
            "state": rng.randrange(-1, 9),
            "values": rng.choice([None, [1.0], ["x"], [1e308, 2]]),
        }
        for key in rng.sample(sorted(record), rng.randrange(3)):
            del record[key]
        lines.insert(k, json.dumps(record).encode() + b"\n")
    path.write_bytes(b"".join(lines))
    return f"journal line {k}: mutation {choice}"


def _plant(rng: random.Random, folder: Path, names: tuple[str, ...], victims: Path) -> str:
    name = rng.choice(names)
    victim = victims / f"victim-{name}"
    victim.write_text(VICTIM_TEXT)
    (folder / name).unlink(missing_ok=True)
    if rng.random() < 0.15:
        os.mkfifo(folder / name)
        return f"{name} is a FIFO"
    (folder / name).symlink_to(victim)
    return f"{name} -> victim"


STUDY_OUTPUTS = ("trials.csv", "history.png", "importances.png", "best.cnn", "trial_0.cnn")
KEPT = "supernet.safetensors"
SQLITE_SIDES = ("study.db", "study.db-wal", "study.db-journal", "study.db.cnnc-lock")
RUN_OUTPUTS = ("metrics.csv", "curves.png", "model.pt", "run.json", "network.cnn", "checkpoint.pt")


def mutate(rng: random.Random, kind: str, folder: Path, victims: Path) -> list[str]:
    """A few mutations of the copied seed `folder` of `kind` (sqlite, oneshot, journal, run)."""
    done = []
    if kind in ("sqlite", "oneshot"):
        steps = [_sql_attr, _sql_attr, _sql_column, _sql_schema, "bytes", "plant", "plant-side"]
        if kind == "oneshot":  # the kept supernet (`search/evaluators/kept.py`)
            steps += ["bytes-kept", "plant-kept"]
    elif kind == "journal":
        steps = [_journal_lines, _journal_lines, "bytes", "plant"]
    else:
        steps = ["plant-run", "plant-run", "bytes-run"]
    chosen = [rng.choice(steps) for _ in range(rng.randint(1, 3))]
    # links and FIFOs last: the fuzzer's own edits of the study must not block on a FIFO it planted
    for step in sorted(chosen, key=lambda s: isinstance(s, str) and s.startswith("plant")):
        if step == "bytes":
            done.append(
                _bytes(rng, folder / ("study.journal" if kind == "journal" else "study.db"))
            )
        elif step == "plant":
            done.append(_plant(rng, folder, STUDY_OUTPUTS, victims))
        elif step == "plant-side":
            done.append(_plant(rng, folder, SQLITE_SIDES, victims))
        elif step == "plant-kept":
            done.append(_plant(rng, folder, (KEPT,), victims))
        elif step == "bytes-kept":
            done.append(_bytes(rng, folder / KEPT))
        elif step == "plant-run":
            done.append(_plant(rng, folder, RUN_OUTPUTS[:-1], victims))
        elif step == "bytes-run":
            done.append(
                _bytes(rng, folder / rng.choice(["checkpoint.pt", "run.json", "metrics.csv"]))
            )
        elif kind == "journal":
            done.append(step(rng, folder / "study.journal"))
        else:
            done.append(step(rng, folder / "study.db"))
    return done


# ---------------------------------------------------------------------------------------------
# One case


def prepare(box: Path, seed: int) -> tuple[list[str], list[str], Path]:
    """The mutated copy, the command line and the victims' folder for case `seed`."""
    rng = random.Random(seed)
    root = seeds(box)
    case, victims = box / "case", box / "victims"
    for folder in (case, victims):
        shutil.rmtree(folder, ignore_errors=True)
    victims.mkdir()
    kind = rng.choice(["sqlite", "sqlite", "journal", "run", "oneshot"])
    shutil.copytree(root / kind, case, symlinks=True)
    recipe = [kind, *mutate(rng, kind, case, victims)]
    if kind == "run":
        argv = [
            "train",
            str(root / "net.cnn"),
            "--data",
            "digits",
            "--out",
            str(case),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--batch-size",
            "256",
            "--resume",
        ]
    elif kind == "oneshot":  # a one-shot search resumed: its study copied into memory and back
        argv = [
            "search",
            str(box / TINY_SPACE),
            "--evaluator",
            "supernet",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--trials",
            "5",
            "--out",
            str(case),
        ]
    elif rng.random() < 0.25:
        argv = [
            "search-report",
            str(case),
            "--export",
            str(rng.randrange(4)),
            "--space",
            str(box / TINY_SPACE),
        ]
    else:
        argv = ["search-report", str(case)]
    return recipe, argv, victims


def classify(rc: int, out: str, err: str, victims: Path) -> tuple[str, str]:
    for victim in victims.iterdir():
        if victim.is_file() and victim.read_text(errors="replace") != VICTIM_TEXT:
            return "bug:write-through", f"{victim.name} changed"
    if rc in (-1, 70):
        said = [line for line in err.splitlines() if line.startswith("internal error")]
        return "bug:internal", (said or [_first(err)])[0][:300]
    if RAW.search(out) or RAW.search(err):
        return "bug:diagnostics", "raw control character in the output"
    if rc == 0:
        return "reported", ""
    if rc == 1 and (err.startswith("error: ") or "error: " in err or "error[" in err):
        return "refused", _first(err.split("error", 1)[1])[:80]
    return "bug:error-format", f"exit {rc}: {_first(err)}"


def _first(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
