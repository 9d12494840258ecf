"""The command line: exit codes, JSON contract, zoo names, arguments, no torch on the check path."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, run_cli


def test_check_vgg16_ok(in_root, capsys):
    code, out, _err = run_cli(["check", "zoo/vgg16.cnn"], capsys)
    assert code == 0
    assert "[3, 224, 224] → [1000]" in out


def test_summary_json_vgg16(in_root, capsys):
    code, out, _ = run_cli(["summary", "zoo/vgg16.cnn", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert (data["params"], data["macs"], data["flops"]) == (
        138_357_544,
        15_470_264_320,
        30_940_528_640,
    )
    assert data["input"] == [3, 224, 224] and data["output"] == [1000]
    assert {"name", "op", "shape", "params", "macs", "rf"} <= set(data["layers"][0])
    assert sum(row["params"] for row in data["layers"]) == data["params"]


def test_summary_json_alexnet_2012(in_root, capsys):
    _code, out, _ = run_cli(["summary", "zoo/alexnet_2012.cnn", "--format", "json"], capsys)
    layers = {row["name"]: row for row in json.loads(out)["layers"]}
    assert layers["conv1"]["shape"] == [96, 55, 55] and layers["conv1"]["params"] == 34_944
    assert layers["pool1"]["shape"] == [96, 27, 27] and layers["pool1"]["params"] == 0


def test_arg_from_command_line(in_root, capsys):
    code, out, _ = run_cli(
        ["summary", "zoo/alexnet_2012.cnn", "--arg", "towers=2", "--format", "json"], capsys
    )
    assert code == 0 and json.loads(out)["params"] == 60_965_224


def test_zoo_model_by_name(capsys):
    code, out, _ = run_cli(["summary", "resnet18", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["params"] == 11_689_512


def test_depth_groups_blocks(capsys):
    _code, out, _ = run_cli(["summary", "resnet50", "--depth", "0", "--format", "csv"], capsys)
    names = [line.split(",")[0] for line in out.splitlines()[1:]]
    assert names == [
        "input",
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "flatten",
        "fc",
    ]


def test_table_reads_like_the_lecture(in_root, capsys):
    _code, out, _ = run_cli(["summary", "zoo/vgg16.cnn"], capsys)
    assert "vgg16 · input [3, 224, 224] · batch 1 · float32" in out
    assert "features.0    Conv 3×3, 64" in out
    assert "138,357,544" in out and "FLOPs = 2 × MACs" in out


def test_markdown_format(in_root, capsys):
    _code, out, _ = run_cli(["summary", "zoo/alexnet_2012.cnn", "--format", "markdown"], capsys)
    assert "| conv1 | Conv 11×11/4, 96 | 96×55×55 |" in out


def test_shape_error_prints_table_to_the_failure(tmp_path, capsys):
    f = tmp_path / "bad.cnn"
    f.write_text(
        "network N {\n    input [3, 32, 32]\n    return in -> a: Conv(8, 3) -> b: Conv(8, 3) -> c: Linear(10)\n}\n"
    )
    code, out, err = run_cli(["summary", f], capsys)
    assert code == 1
    table = [line.split() for line in out.splitlines()]
    assert ["b", "Conv", "3×3,", "8", "8×28×28", "6,272", "584", "451,584", "5"] in table
    assert ["c", "Linear,", "10", "?", "0", "0", "0"] in table  # the diagram's label: one describer
    assert "stops at `c`" in out
    assert "error[E0304]" in err and "Traceback" not in err


def test_several_networks_need_a_choice(in_root, capsys):
    code, _out, err = run_cli(["summary", "zoo/inception_module.cnn"], capsys)
    assert code == 2 and "--network" in err
    code, _out, err = run_cli(["summary", "zoo/inception_module.cnn", "--network", "nope"], capsys)
    assert code == 2 and "`naive`" in err


def test_usage_errors_exit_2(in_root, capsys):
    assert run_cli(["summary"], capsys)[0] == 2
    assert run_cli(["summary", "zoo/vgg16.cnn", "--input", "3,x"], capsys)[0] == 2
    code, _, err = run_cli(["summary", "zoo/alexnet_2012.cnn", "--arg", "towers"], capsys)
    assert code == 1 and "E0410" in err
    assert run_cli(["summary", "no_such_model"], capsys)[0] == 2


def test_json_diagnostics(in_root, capsys):
    code, out, _ = run_cli(
        ["check", "tests/ui/E0302_concat_spatial.cnn", "--format", "json"], capsys
    )
    data = json.loads(out)
    assert code == 1 and not data["ok"]
    (d,) = data["diagnostics"]
    assert (d["code"], d["line"], d["column"], d["severity"]) == ("E0302", 3, 44, "error")


def test_input_override(capsys):
    _code, out, _ = run_cli(
        ["summary", "resnet18", "--input", "3,448,448", "--format", "json"], capsys
    )
    data = json.loads(out)
    assert data["input"] == [3, 448, 448] and data["output"] == [1000]
    assert data["params"] == 11_689_512 and data["macs"] > 4 * 1_800_000_000


def test_internal_error_exits_70(monkeypatch, in_root, capsys):
    import cnnc.compiler.analysis.summary as summary

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(summary, "summarize", broken)
    code, _out, err = run_cli(["summary", "zoo/vgg16.cnn"], capsys)
    assert (
        code == 70
        and "internal error: boom" in err
        and "bug in cnnc" in err
        and "Traceback" not in err
    )


def test_fmt_check_and_roundtrip(tmp_path, capsys):
    f = tmp_path / "a.cnn"
    f.write_text("network N{input [3,32,32]\nreturn in->Conv(8,3,pad=1)->ReLU}\n")
    assert run_cli(["fmt", "--check", f], capsys)[0] == 1
    assert run_cli(["fmt", "--write", f], capsys)[0] == 0
    assert (
        f.read_text()
        == "network N {\n    input [3, 32, 32]\n    return in -> Conv(8, 3, pad = 1) -> ReLU\n}\n"
    )
    assert run_cli(["fmt", "--check", f], capsys)[0] == 0


def test_explain(capsys):
    code, out, _ = run_cli(["explain", "E0301"], capsys)
    assert code == 0 and out.startswith("# E0301")
    assert run_cli(["explain", "E9999"], capsys)[0] == 2


def test_summary_never_imports_torch():
    code = (
        "import sys; from cnnc.cli import main; rc = main(['summary', 'zoo/resnet152.cnn', '--format', 'json']);"
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == 60_192_808


def test_zoo_lists_models_with_figures_and_sources(tmp_path, capsys):
    code, out, _ = run_cli(["zoo", "--format", "json", "--plot", tmp_path / "zoo.png"], capsys)
    rows = {r["model"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["resnet50"]["params"] == 25_557_032 and rows["resnet50"]["macs"] == 4_089_184_256
    assert rows["resnet50"]["top1"] == 76.13 and "torchvision" in rows["resnet50"]["source"]
    assert rows["senet154"]["source"].startswith("Hu et al.")
    assert (tmp_path / "zoo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
