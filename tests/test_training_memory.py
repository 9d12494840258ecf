"""The training-memory estimate (`compiler/analysis/training_memory.py`, `cnnc summary --train`)."""

from __future__ import annotations

import json

import pytest

import cnnc.api
from cnnc.compiler.analysis.training_memory import saved_elements, storages, training_memory
from conftest import run_cli

# conv → BN → ReLU (in place) → 2×2 max pool → flatten (a view) → linear, at [3, 8, 8].
TINY = ("network t { input [3, 8, 8] return in -> c: Conv(4, 3, pad = 1, bias = false) "
        "-> b: BatchNorm -> ReLU -> MaxPool(2) -> Flatten -> fc: Linear(10) }")
# By hand: params 4·3·9 (conv) + 2·4 (BN) + 64·10 + 10 (fc) = 766, so 3,064 bytes of weights.
# Saved per sample: the input 192 (conv), the conv's output 256 (BN), the BN output the ReLU
# overwrote 256 (ReLU and the pool), the pool's output 64 (fc, through the flatten view): 768
# floats = 3,072 bytes, plus the pool's int64 indices 64 · 8 = 512 bytes. Largest tensor: 256.
WEIGHTS = 3064
PER_SAMPLE = 768 * 4 + 64 * 8
LARGEST = 256


def tiny():
    return cnnc.api.graph("tiny.cnn", text=TINY)


def test_saved_tensors_are_counted_once_each():
    assert saved_elements(tiny()) == (768, LARGEST)


def test_in_place_activations_and_views_share_their_inputs_storage():
    g = tiny()
    ids = {n.name: n.id for n in g.nodes_in_order()}
    held = storages(g)
    assert held[ids["relu"]] == ids["b"]
    assert held[ids["flatten"]] == ids["maxpool"]
    assert held[ids["c"]] == ids["c"]


@pytest.mark.parametrize("optimizer,buffers", [("sgd", 1), ("adam", 2)])
def test_the_estimate_adds_up_by_hand(optimizer, buffers):
    t = training_memory(tiny(), batch=4, optimizer=optimizer)
    assert (t.weights, t.gradients, t.optimizer_state) == (WEIGHTS, WEIGHTS, buffers * WEIGHTS)
    assert t.activations == 4 * PER_SAMPLE == 14_336
    assert t.workspace == 4 * 2 * LARGEST * 4 == 8_192
    assert t.total == (2 + buffers) * WEIGHTS + 14_336 + 8_192


def test_dropout_is_a_tensor_and_a_mask_in_training():
    g = cnnc.api.graph("d.cnn", text="network d { input [10] return in -> l: Linear(20) -> "
                                      "Dropout(0.5) -> m: Linear(5) }")
    # saved: the input 10 (l), the dropout's output 20 (m); its bool mask 20 bytes beside.
    assert training_memory(g, batch=1).activations == (10 + 20) * 4 + 20


def test_half_precision_halves_the_bytes():
    full, half = training_memory(tiny(), 4), training_memory(tiny(), 4, dtype="float16")
    assert half.weights * 2 == full.weights
    assert half.workspace * 2 == full.workspace


def test_cli_prints_the_estimate_as_json(tmp_path, capsys):
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY)
    code, out, _ = run_cli(["summary", path, "--train", "--batch", "4", "--optimizer", "adam",
                            "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out)["training"] == {
        "batch": 4, "dtype": "float32", "optimizer": "adam", "weights": WEIGHTS,
        "gradients": WEIGHTS, "optimizer_state": 2 * WEIGHTS, "activations": 14_336,
        "workspace": 8_192, "total": 4 * WEIGHTS + 14_336 + 8_192,
    }


def test_cli_table_names_the_parts(tmp_path, capsys):
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY)
    code, out, _ = run_cli(["summary", path, "--train", "--batch", "4"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[-3] == "training     ≈ 0.0 MiB peak, batch 4, SGD with momentum, float32:"
    assert lines[-1].startswith("  + saved activations 0.0 MiB + gradients in flight")


@pytest.mark.parametrize("extra", [["--batch", "4"], ["--optimizer", "adam"], ["--train", "--batch", "0"]])
def test_cli_training_options_without_train_or_out_of_range_are_usage_errors(extra, tmp_path, capsys):
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY)
    code, _, err = run_cli(["summary", path, *extra], capsys)
    assert code == 2
    assert "--batch" in err


def test_summary_with_train_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from cnnc.cli import main; main(['summary', 'resnet18', '--train', "
            "'--batch', '8']); assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "training     ≈ " in done.stdout
