"""`cnnc compile`: the summary line, the artifact each `-o` suffix asks for, and the exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import run_cli

NET = """
block Res(c) {
    return (in -> conv1: Conv(c, 3, pad = 1, bias = false) -> bn1: BatchNorm -> ReLU) + in
}
network tiny(classes = 10) {
    input [3, 16, 16]
    return in -> stem: Conv(8, 3, stride = 2, pad = 1) -> layer1: [Res(8) for i in range(2)]
              -> avgpool: GlobalAvgPool -> Flatten -> fc: Linear(classes)
}
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    return path


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


def test_writes_source_and_prints_a_summary(program, tmp_path, capsys):
    out = tmp_path / "deep" / "tiny.py"  # missing folders are made
    code, stdout, _ = run_cli(["compile", program, "-o", out], capsys)
    assert code == 0
    # 224 (stem) + 2 × (576 + 16) (blocks) + 90 (fc) params; 13,824 + 2 × 36,864 + 80 MACs
    assert stdout.splitlines()[0] == "tiny: 1,498 params, 87.63 K MACs, [3, 16, 16] → [10]"
    assert f"wrote {out}: class Tiny, needs only torch" in stdout
    script = (
        "import sys; sys.modules['cnnc'] = None\n"
        "import torch; from tiny import Tiny\n"
        "print(tuple(Tiny(seed=0).eval()(torch.randn(2, 3, 16, 16)).shape))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=out.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 10)"


def test_default_output_is_network_py_in_the_working_directory(
    program, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(["compile", program, "--arg", "classes=3", "--seed", "4"], capsys)
    assert code == 0
    source = (tmp_path / "tiny.py").read_text()
    assert "def __init__(self, seed: int | None = 4):" in source
    assert "self.fc = nn.Linear(8, 3)" in source


def test_dash_prints_source_to_stdout_and_the_summary_to_stderr(program, capsys):
    code, stdout, stderr = run_cli(["compile", program, "-o", "-"], capsys)
    assert code == 0
    assert stdout.startswith('"""`tiny`, compiled by cnnc') and "class Tiny(nn.Module):" in stdout
    assert stderr.startswith("tiny: 1,498 params")


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_writes_a_torch_export_program(program, tmp_path, capsys, suffix):
    import cnnc

    out = tmp_path / f"tiny{suffix}"
    code, stdout, _ = run_cli(["compile", program, "-o", out, "--seed", "0"], capsys)
    assert code == 0 and "torch.export program" in stdout
    with open(out, "rb") as f:
        exported = torch.export.load(f).module()
    model = cnnc.load(program, seed=0).eval()
    x = torch.randn(3, 3, 16, 16)  # the batch is dynamic
    assert torch.allclose(exported(x), model(x), atol=1e-6)


def test_usage_and_user_errors(program, tmp_path, capsys):
    assert run_cli(["compile", program, "-o", tmp_path / "tiny.txt"], capsys)[0] == 2
    assert run_cli(["compile"], capsys)[0] == 2
    bad = tmp_path / "bad.cnn"
    bad.write_text("network bad { input [3, 8, 8] return in -> forward: Conv(4, 3) }")
    code, _, stderr = run_cli(["compile", bad, "-o", tmp_path / "bad.py"], capsys)
    assert code == 1 and "error[E0209]: the label `forward` is taken" in stderr  # at check time
    assert not (tmp_path / "bad.py").exists()
