"""compiler/lower/latency.py and the `latency` objective: the table's keys, its cache on disk (a
second table times nothing; a damaged or crafted file is ignored with one note and never written
through), the sum rule, `cnnc summary --latency`'s column, and search trials carrying a latency.
No assertion on a timing's size: only that each is a positive number of milliseconds."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
from conftest import ROOT, Quiet, by_params, run_cli

from cnnc.api import elaborate_file
from cnnc.compiler.lower import latency
from cnnc.compiler.lower.latency import LatencyTable, layer_key

TWIN = """network twin {
    input [2, 6, 6]
    a = in -> c1: Conv(4, 3, pad = 1) -> r1: ReLU
    b = in -> c2: Conv(4, 3, pad = 1) -> r2: ReLU
    return (a + b) -> pool: MaxPool(2) -> Flatten -> fc: Linear(3)
}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch, one_thread):
    """The user's cache folder, here; and few repeats (the tests count timings, not their size)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNC_CACHE", raising=False)
    monkeypatch.setattr(latency, "WARMUP", 1)
    monkeypatch.setattr(latency, "REPEATS", 3)
    return tmp_path / "cache" / "cnnc" / "latency-cpu.json"


@pytest.fixture
def twin(tmp_path):
    path = tmp_path / "twin.cnn"
    path.write_text(TWIN)
    result = elaborate_file(path)
    assert result.ok
    return result.graph


def test_keys_name_the_op_its_call_its_input_shapes_batch_dtype_and_device(twin):
    import torch

    nodes = {n.name: n for n in twin.nodes_in_order()}
    cpu = torch.device("cpu")
    keys = {name: layer_key(twin, n, 1, "float32", cpu) for name, n in nodes.items()}
    assert [name for name, key in keys.items() if key is None] == ["input"]
    assert keys["c1"] == keys["c2"] and keys["r1"] == keys["r2"]  # the same computation
    torch.set_num_threads(1)
    assert json.loads(layer_key(twin, nodes["c1"], 1, "float32", cpu)) == [
        "Conv",
        ["Conv2d", [2, 4], {"kernel_size": 3, "padding": 1}],
        [[2, 6, 6]],
        1,
        "float32",
        "cpu threads=1",
    ]
    assert layer_key(twin, nodes["c1"], 2, "float32", cpu) != keys["c1"]
    assert layer_key(twin, nodes["c1"], 1, "float64", cpu) != keys["c1"]
    add = next(n for n in nodes.values() if n.op == "Add")
    assert json.loads(keys[add.name])[:3] == ["Add", ["operator.add"], [[4, 6, 6], [4, 6, 6]]]


def test_a_network_is_the_sum_of_its_layers_each_timed_once(cache, twin):
    table = LatencyTable("cpu")
    layers = table.layers(twin)
    assert set(layers) == {n.id for n in twin.nodes_in_order() if n.op != "Input"}
    assert all(ms > 0 and math.isfinite(ms) for ms in layers.values())
    assert table.measured == len(layers) - 2  # c2 and r2 are c1's and r1's entries
    assert table.predict(twin) == sum(layers.values())
    assert table.measured == len(layers) - 2  # predicting again timed nothing
    assert latency.end_to_end(twin, "cpu") > 0


def test_the_cache_file_spares_a_second_table_every_timing(cache, twin):
    first = LatencyTable("cpu")
    before = first.layers(twin)
    assert first.measured > 0 and cache.is_file()
    second = LatencyTable("cpu")
    assert second.layers(twin) == before and second.measured == 0 and second.notes == []
    off = LatencyTable("cpu", cache=False)  # memory only: times again
    off.layers(twin)
    assert off.measured == first.measured


def valid_entries(cache, twin) -> dict:
    LatencyTable("cpu").layers(twin)
    return json.loads(cache.read_text())


CRAFTED = {
    "not JSON": lambda good: b'{"format": ',
    "not UTF-8": lambda good: b"\xff\xfe{}",
    "deeply nested": lambda good: b"[" * 100_000 + b"]" * 100_000,
    "another format": lambda good: json.dumps({**good, "format": "pickle"}).encode(),
    "another version": lambda good: json.dumps({**good, "version": 99}).encode(),
    "a list": lambda good: b"[1, 2]",
    "a negative timing": lambda good: _with_timing(good, -1.0),
    "an absurd timing": lambda good: _with_timing(good, 1e300),
    "an infinite timing": lambda good: _with_timing(good, "Infinity"),
    "a text timing": lambda good: _with_timing(good, "__import__('os')"),
    "a true timing": lambda good: _with_timing(good, True),
    "a long key": lambda good: json.dumps(
        {**good, "entries": {"k" * (latency.MAX_KEY + 1): 1.0}}
    ).encode(),
}


def _with_timing(good: dict, value) -> bytes:
    key = next(iter(good["entries"]))
    text = json.dumps({**good, "entries": {**good["entries"], key: "VALUE"}})
    return text.replace('"VALUE"', json.dumps(value) if value != "Infinity" else value).encode()


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_cache_is_ignored_with_one_note_and_rewritten(case, cache, twin):
    good = valid_entries(cache, twin)
    cache.write_bytes(CRAFTED[case](good))
    table = LatencyTable("cpu")
    assert table.entries == {} and len(table.notes) == 1
    assert table.notes[0].startswith(f"ignored the latency table {cache}: ")
    table.layers(twin)
    assert table.measured > 0 and table.notes == [table.notes[0]]
    assert json.loads(cache.read_text())["entries"].keys() == good["entries"].keys()


def test_a_cache_too_large_is_not_read(cache, twin, monkeypatch):
    valid_entries(cache, twin)
    monkeypatch.setattr(latency, "MAX_FILE_BYTES", 64)
    table = LatencyTable("cpu")
    assert table.entries == {} and "larger than" in table.notes[0]


def test_a_planted_link_or_fifo_is_not_followed_and_the_link_is_replaced(cache, twin, tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"format": latency.FORMAT, "version": 1, "entries": {}}))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.symlink_to(victim)
    table = LatencyTable("cpu")
    assert len(table.notes) == 1 and "link" in table.notes[0]
    table.layers(twin)
    assert not cache.is_symlink() and json.loads(victim.read_text())["entries"] == {}
    cache.unlink()
    os.mkfifo(cache)
    table = LatencyTable("cpu")  # returns: a FIFO is refused by type, never opened to block
    assert len(table.notes) == 1 and "fifo" in table.notes[0]


def test_summary_latency_adds_the_column_and_the_totals_line(cache, twin, tmp_path, capsys):
    path = tmp_path / "twin.cnn"
    code, out, _ = run_cli(["summary", path, "--latency"], capsys)
    header = next(line for line in out.splitlines() if line.startswith("name"))
    assert code == 0 and header.split()[-2:] == ["latency", "ms"]
    assert "latency " in out and "ms predicted (the sum of the layers)" in out
    code, out, _ = run_cli(["summary", path, "--latency", "--format", "json"], capsys)
    data = json.loads(out)
    timed = [layer for layer in data["layers"] if layer["op"] != "Input"]
    assert code == 0 and all(layer["latency_ms"] > 0 for layer in timed)
    assert data["latency"]["predicted_ms"] == pytest.approx(sum(x["latency_ms"] for x in timed))
    assert data["latency"]["measured_ms"] > 0 and data["latency"]["timed"] == 0  # all cached
    code, out, _ = run_cli(["summary", path, "--latency", "--format", "csv"], capsys)
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and rows[0]["latency_ms"] == "" and float(rows[1]["latency_ms"]) > 0
    assert run_cli(["summary", path, "--device", "cpu"], capsys)[0] == 2  # --device needs --latency


def test_search_trials_carry_a_positive_latency_checked_end_to_end(cache, tmp_path, capsys):
    from cnnc.search import driver

    settings = driver.Settings(
        file=str(ROOT / "zoo" / "spaces" / "tiny.cnn"),
        out=tmp_path / "out",
        trials=4,
        sampler="random",
        objectives=("accuracy", "latency"),
        device="cpu",
    )
    space = driver.space_for(settings, (1, 8, 8), 10)
    result = driver.run(settings, space, by_params, Quiet(), num_classes=10)
    done = [r for r in result.rows if r.state == "COMPLETE"]
    assert len(done) == 4
    for row in done:
        assert row.latency_ms > 0 and row.values[1] == row.latency_ms
        assert row.latency_measured_ms > 0  # the first trials are all checked end to end
    check = result.study.user_attrs["latency_check"]
    assert check["members"] == 4 and check["mean_abs_pct_error"] >= 0
    assert any(n.startswith("latency: the sum of the layers predicted") for n in result.notes)
    with open(tmp_path / "out" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    assert result.study.metric_names == ["accuracy", "latency"]
    code, out, _ = run_cli(["search-report", tmp_path / "out"], capsys)
    assert code == 0 and "latency" in out.splitlines()[1].split()  # a column of the table
    assert (
        "note: latency: the sum of the layers predicted the end-to-end latency of 4 members" in out
    )


def test_the_sample_checked_end_to_end_and_its_error():
    from types import SimpleNamespace

    from cnnc.search import latency as objective

    assert [n for n in range(40) if objective.checked(n)] == [*range(8), 8, 16, 24, 32]

    def row(predicted, measured):
        return SimpleNamespace(latency_ms=predicted, latency_measured_ms=measured)

    rows = [row(1.1, 1.0), row(0.5, 1.0), row(2.0, None), row(None, 3.0), row(3.0, 2.0)]
    figures = objective.check(rows)
    assert figures == {
        "members": 3,
        "mean_abs_pct_error": pytest.approx((10 + 50 + 50) / 3),
        "max_abs_pct_error": pytest.approx(50.0),
        "mean_pct_error": pytest.approx((10 - 50 + 50) / 3),
    }
    assert objective.check_note(figures) == (
        "latency: the sum of the layers predicted the end-to-end latency of 3 members within "
        "36.7 % on average (mean absolute error; the largest 50.0 %; 3.3 % high on average)"
    )
    low = objective.check([row(0.8, 1.0), row(0.6, 1.0)])  # a bias: every member reads low
    assert objective.check_note(low).endswith(
        "(mean absolute error; the largest 40.0 %; 30.0 % low on average)"
    )
    assert objective.check([row(1.0, None)]) is None


def test_summary_latency_past_the_memory_budget_or_failing_to_run_is_a_user_error(
    cache, twin, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "twin.cnn"
    monkeypatch.setenv("CNNC_MAX_MEMORY", "1M")  # the network checks (batch 1); 1000 samples do not
    code, _, err = run_cli(["summary", path, "--latency", "--batch", "1000"], capsys)
    assert code == 1 and f"error: --latency on {path} would allocate about" in err
    assert "memory budget" in err and "Traceback" not in err
    monkeypatch.setenv("CNNC_MAX_MEMORY", "16G")

    def fails(*args):
        raise RuntimeError('"slow_conv2d_cpu" not implemented for \x1b[31mHalf\nmore')

    monkeypatch.setattr(latency, "node_call", fails)
    code, _, err = run_cli(["summary", path, "--latency", "--dtype", "float16"], capsys)
    assert code == 1 and "Traceback" not in err and "\x1b" not in err
    assert f"error: --latency on {path}: `c1` did not run: " in err
    assert "float32 runs everywhere" in err


def test_summary_latency_of_a_group_is_the_sum_of_its_layers(cache, tmp_path, capsys):
    path = tmp_path / "blocks.cnn"
    path.write_text(
        "block B(c) {\n    return in -> conv: Conv(c, 3, pad = 1) -> act: ReLU\n}\n"
        "network blocks {\n    input [2, 6, 6]\n"
        "    return in -> b1: B(4) -> b2: B(4) -> Flatten -> fc: Linear(3)\n}\n"
    )
    code, out, _ = run_cli(
        ["summary", path, "--latency", "--depth", "0", "--format", "json"], capsys
    )
    data = json.loads(out)
    layers = {x["name"]: x.get("latency_ms") for x in data["layers"]}
    groups = {x["name"]: x.get("latency_ms") for x in data["groups"]}
    assert code == 0 and groups["input"] is None
    assert groups["b1"] == layers["b1.conv"] + layers["b1.act"]
    assert sum(v for v in groups.values() if v) == pytest.approx(data["latency"]["predicted_ms"])


def test_a_cache_folder_that_cannot_be_made_keeps_the_table_in_memory(
    cache, twin, tmp_path, monkeypatch
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    table = LatencyTable("cpu")
    assert table.layers(twin) and table.path is None
    assert len(table.notes) == 1 and table.notes[0].startswith("the latency table stays in memory")


def test_a_slow_run_is_timed_fewer_times(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(latency, "BUDGET_SECONDS", -1.0)  # every run is "slow"
    latency.time_call(lambda: calls.append(1), torch.device("cpu"))
    assert len(calls) == 1 + latency.MIN_REPEATS  # one warm-up, then the fewest timed runs
    calls.clear()
    monkeypatch.setattr(latency, "BUDGET_SECONDS", 1e9)
    latency.time_call(lambda: calls.append(1), torch.device("cpu"))
    assert len(calls) == latency.WARMUP + latency.REPEATS


def test_summary_latency_on_a_gpu_torch_does_not_see_is_a_user_error(cache, twin, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_cli(
        ["summary", tmp_path / "twin.cnn", "--latency", "--device", "cuda"], capsys
    )
    assert code == 1 and "error: --device cuda was asked for, but torch sees no CUDA GPU" in err
