"""`cnnc ops` and `cnnc explain OP`: the op reference, generated from the registry."""

from __future__ import annotations

import pytest
from conftest import run_cli

from cnnc.compiler.ops import FAMILY_TITLES, REGISTRY


def test_ops_lists_every_op_with_its_summary_under_its_family(capsys):
    code, out, err = run_cli(["ops"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    for spec in REGISTRY.values():
        row = next(line for line in lines if line.split()[:1] == [spec.name])
        assert spec.doc in row
        title = FAMILY_TITLES[spec.family] + ":"
        assert lines.index(title) < lines.index(row), spec.name
        later = [
            t + ":"
            for f, t in FAMILY_TITLES.items()
            if t + ":" in lines and lines.index(t + ":") > lines.index(title)
        ]
        assert all(lines.index(row) < lines.index(t) for t in later), spec.name


def test_the_page_of_conv_has_every_piece(capsys):
    code, out, _ = run_cli(["ops", "Conv"], capsys)
    assert code == 0
    assert (
        "Conv(out_channels, kernel_size, stride = 1, pad = 0, dilation = 1, groups = 1, bias = true)"
        in out
    )
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith("  ") and line.split()
    }
    assert (
        rows["pad"][1] == "0" and rows["pad"][-1] == "padding"
    )  # the default, torch's name beside it
    assert rows["out_channels"][1] == "required" and "positive" in " ".join(rows["out_channels"])
    assert "inferred: `in_channels` = the input's channels" in out
    assert "shape:    [C, H, W] → [out_channels, H', W']" in out
    assert "params:   out_channels · (C / groups) · kh · kw" in out and "MACs:" in out
    assert "torch:    torch.nn.Conv2d" in out
    assert "y = x -> Conv(64, 3, stride = 2, pad = 1, bias = false)" in out


def test_the_page_of_upsample_shows_its_modes_and_the_second_tensor(capsys):
    code, out, _ = run_cli(["ops", "Upsample"], capsys)
    assert code == 0
    assert '"nearest" | "bilinear"' in out and "scale_factor" in out and "align_corners" in out
    assert "like" in out and "Resize" in out and "forward takes (x, like)" in out
    assert 'y = x -> Upsample(like = skip, mode = "bilinear")' in out


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_every_op_has_a_page(op, capsys):
    code, out, _ = run_cli(["ops", op], capsys)
    spec = REGISTRY[op]
    assert code == 0
    assert out.startswith(f"{op}: {spec.doc}")
    for piece in (spec.shape_rule, spec.params_rule, spec.macs_rule, spec.example):
        assert piece in out
    for p in spec.params:
        assert p.name in out and p.torch_name in out


def test_explain_with_an_op_prints_its_page(capsys):
    _, page, _ = run_cli(["ops", "Conv"], capsys)
    code, out, _ = run_cli(["explain", "Conv"], capsys)
    assert code == 0 and out == page


def test_ops_accepts_aliases_and_any_letter_case(capsys):
    _, page, _ = run_cli(["ops", "BatchNorm"], capsys)
    assert run_cli(["ops", "BN"], capsys)[1] == page
    assert run_cli(["ops", "batchnorm"], capsys)[1] == page


@pytest.mark.parametrize("command", [["ops", "Conv2d"], ["explain", "Conv2d"]])
def test_an_unknown_op_is_a_usage_error_with_a_suggestion(command, capsys):
    code, out, err = run_cli(command, capsys)
    assert code == 2 and out == ""
    assert "`Conv2d`" in err and "did you mean `Conv`?" in err


def test_explain_still_explains_codes(capsys):
    code, out, _ = run_cli(["explain", "E0301"], capsys)
    assert code == 0 and out.startswith("# E0301")
    code, _, err = run_cli(["explain", "E9999"], capsys)
    assert code == 2 and "`cnnc ops`" in err
