"""`cnnc.train(...)` and `cnnc.search(...)` (cnnc/runs.py): the commands' own work from Python, returning results;
`cnnc train` prints its results on stdout and takes --threads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import cnnc
from cnnc.cli import main

TINY = (
    "network tiny(classes = 10) {\n    input [1, 8, 8]\n"
    "    return in -> c: Conv(4, 3, pad = 1) -> BatchNorm -> ReLU -> GlobalAvgPool -> Flatten -> fc: Linear(classes)\n}\n"
)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY)
    return path


def test_train_returns_the_run_whose_figures_the_cli_prints(tiny, tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                tiny,
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                out,
                "--arg",
                "classes=10",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    assert torch.get_num_threads() == 2  # `one_thread` sets it back
    cli_out, cli_err = capsys.readouterr()
    torch.set_num_threads(1)
    run = cnnc.train(tiny, "digits", out, epochs=1, args={"classes": 10}, threads=2)
    assert torch.get_num_threads() == 2
    api_out = capsys.readouterr().out
    assert (
        cli_out.startswith(api_out) and api_out.count("\n") == 1
    )  # the results are returned, not printed
    assert cli_err.startswith("epoch 1/1 ") and "validation accuracy" not in cli_err
    lines = cli_out.splitlines()  # the same seed and folder: the same figures
    assert lines[0] == (
        "tiny: 98 params, 98 trainable, 0 frozen (0 tensors); digits: 1,438 train / 359 "
        "validation images of [1, 8, 8], 10 classes"
    )
    assert lines[1] == f"validation accuracy {100 * run.accuracy:.2f} % after 1 epochs"
    assert lines[2] == f"wrote {', '.join(str(p) for p in run.files)}"
    assert lines[3] == f"rebuild: {run.rebuild}"
    assert run.folder == out and [r["epoch"] for r in run.metrics] == [1]
    assert run.accuracy == run.metrics[-1]["val_acc"]
    assert all(p.is_file() for p in run.files)
    assert run.model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_train_threads_below_one_is_a_usage_error(tiny, tmp_path, capsys):
    assert main(["train", tiny, "--data", "digits", "--out", tmp_path / "r", "--threads", "0"]) == 2
    assert "--threads must be at least 1, but got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cnnc.train: --threads must be at least 1, but got 0"):
        cnnc.train(tiny, "digits", tmp_path / "r", threads=0)


def test_a_number_out_of_range_is_a_value_error(tiny, tmp_path):
    with pytest.raises(
        ValueError, match=r"^cnnc.search: --lr must be a positive number, but got -1$"
    ):
        cnnc.search(tiny, lr=-1, out=tmp_path / "s")
    with pytest.raises(ValueError, match=r"^cnnc.train: --batch-size must be at least 2 \("):
        cnnc.train(tiny, "digits", tmp_path / "r", batch_size=1)


def test_a_value_the_command_refuses_is_a_value_error(tiny, tmp_path):
    with pytest.raises(ValueError, match="cnnc.train: argument --epochs: invalid int value: 'x'"):
        cnnc.train(tiny, "digits", tmp_path / "r", epochs="x")
    with pytest.raises(ValueError, match="cnnc.search: --trials must be at least 1"):
        cnnc.search(tiny, trials=0, out=tmp_path / "s")


def test_search_returns_the_study_its_best_member_and_files(tmp_path, capsys, one_thread):
    from conftest import ROOT

    import cnnc.search.driver  # the room imported first: `cnnc.search` is still callable

    out = tmp_path / "s"
    result = cnnc.search(ROOT / "zoo" / "spaces" / "tiny.cnn", trials=2, evaluator="proxy", out=out)
    assert cnnc.search.driver.Result is type(result)
    assert result.stopped == "done"
    assert len(result.study.trials) == len(result.rows) == 2
    assert result.best and result.best[0].number in (0, 1)
    assert result.files[:2] == [out / "trials.csv", out / "best.cnn"]
    assert (out / "best.cnn").is_file()
    best = result.best[0]
    assert repr(result) == (
        f"<Result of study `tiny`: 2 trials: 2 scored; best #{best.number} {list(best.values)}; "
        f"{', '.join(map(str, result.files))}>"
    )
    printed = capsys.readouterr().out
    assert (
        "2 trials: 2 scored in study `tiny`" in printed and f"wrote {out / 'best.cnn'}" in printed
    )
