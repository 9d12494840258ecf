"""The trained supernet kept in the study folder (`search/evaluators/kept.py`): a resume whose
training would be the same loads it, and anything else in its place, a hostile file included, is
trained again and replaced, never an error or a partial load."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from conftest import ROOT, run_cli

from cnnc.search.driver import Settings
from cnnc.search.evaluators import cover, kept
from cnnc.search.evaluators import supernet as one_shot
from cnnc.search.space import load_space
from cnnc.training.data import load_dataset

TINY = ROOT / "zoo" / "spaces" / "tiny.cnn"
DIGEST = "0" * 64


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def evaluator(tmp_path, digits, **changes):
    settings = Settings(
        file=str(TINY), evaluator="supernet", epochs=1, device="cpu", out=tmp_path,
        keep_supernet=True, **changes,
    )  # fmt: skip
    return one_shot.supernet_evaluator(settings, digits)


def scores(evaluate) -> list[float]:
    space = load_space(TINY)
    members = cover.covered(space)
    return [evaluate(m.graph, lambda epoch, accuracy: None).score for m in members]


def test_a_resume_loads_the_kept_supernet_and_scores_as_the_trained_one(
    tmp_path, digits, monkeypatch, one_thread
):
    first = evaluator(tmp_path, digits)
    assert (tmp_path / kept.FILE).is_file()
    before = scores(first)
    monkeypatch.setattr(one_shot, "train", lambda *a, **k: pytest.fail("trained again"))
    again = evaluator(tmp_path, digits)
    assert again.training == first.training
    assert again.note == (
        "supernet (kept in supernet.safetensors): 36 architectures, trained 23 steps (69 member "
        f"passes, a uniform architecture a step, sandwich rule) in {first.training.seconds:.1f} s"
        "; not trained again"
    )
    assert scores(again) == before  # every member, exactly


def test_other_settings_train_again_and_replace_the_kept_supernet(tmp_path, digits, one_thread):
    evaluator(tmp_path, digits)
    digest = kept._metadata((tmp_path / kept.FILE).read_bytes())["key"]
    other = evaluator(tmp_path, digits, lr=0.02)
    assert other.note.endswith(
        "; supernet.safetensors holds the supernet of other settings, data or space, so not loaded"
    )
    assert kept._metadata((tmp_path / kept.FILE).read_bytes())["key"] != digest
    assert not (tmp_path.parent / kept.FILE).exists()


def test_an_evaluator_a_caller_builds_keeps_nothing(tmp_path, digits, one_thread):
    settings = Settings(file=str(TINY), evaluator="supernet", epochs=1, device="cpu", out=tmp_path)
    one_shot.supernet_evaluator(settings, digits)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def small_net():
    """A built, untrained supernet of tiny.cnn and its tensors as `kept.save` writes them."""
    net, _ = one_shot.build(load_space(TINY), 0)
    return net


def saved(folder, net, digest=DIGEST, training=None) -> bytes:
    training = training or one_shot.Training(5, 15, 36, True, 1.5)
    kept.save(folder, net, digest, training)
    return (folder / kept.FILE).read_bytes()


def forged(state: dict, meta: dict) -> bytes:
    from safetensors.torch import save

    return save(state, metadata=meta)


def test_the_kept_file_round_trips_its_training(tmp_path, small_net):
    saved(tmp_path, small_net)
    training, why = kept.load(tmp_path, small_net, DIGEST, TEMPLATE)
    assert why is None and training == one_shot.Training(5, 15, 36, True, 1.5)
    assert kept.load(tmp_path / "none", small_net, DIGEST, TEMPLATE) == (None, None)


COSTS = {"steps": 5, "passes": 15, "members": 36, "seconds": 1.5}
TEMPLATE = one_shot.Training(0, 0, 0, True, 0.0)  # what the run itself decides: rule, sandwich, …


def meta(training: dict | None = None) -> dict:
    return {"cnnc": "supernet", "key": DIGEST, "training": json.dumps(training or COSTS)}


def hostile(small_net) -> dict:
    """Files a shared study folder may hold in place of a kept supernet -> the reason given."""
    state = {k: v.clone() for k, v in small_net.state_dict().items()}
    wrong_shape = {**state, "store.fc:0.weight": torch.zeros(3, 3)}
    nan = {k: v.clone() for k, v in state.items()}
    nan["store.fc:0.weight"][0, 0] = float("nan")
    extra = {**state, "store.extra": torch.zeros(1)}
    as_int = {**state, "store.fc:0.weight": state["store.fc:0.weight"].to(torch.int32)}
    lying = bytearray(forged(state, meta()))
    lying[:8] = struct.pack("<Q", 2**62)  # a header of 4 EiB
    header = b'{"__metadata__": {"cnnc": "supernet", "key": "' + DIGEST.encode() + b'"}}'
    return {
        b"\x00" * 3: "is not a supernet cnnc saved",
        os.urandom(4096): "is not a supernet cnnc saved",
        bytes(lying): "is not a supernet cnnc saved",
        struct.pack("<Q", len(header)) + header: "does not hold this supernet's weights",
        forged(state, {**meta(), "key": "1" * 64}): "holds the supernet of other settings",
        forged(state, {**meta(), "cnnc": "other"}): "is not a supernet cnnc saved",
        forged(wrong_shape, meta()): "does not hold this supernet's weights",
        forged(nan, meta()): "does not hold this supernet's weights",
        forged(extra, meta()): "does not hold this supernet's weights",
        forged(as_int, meta()): "does not hold this supernet's weights",
        forged(state, meta({"steps": "5"})): "does not hold this supernet's weights",
        forged(state, {**meta(), "training": "[" * 100_000}): "does not hold this supernet's",
        forged(state, meta({**COSTS, "seconds": True})): "does not hold",
        forged(state, meta({**COSTS, "steps": -1})): "does not hold",
        forged(state, meta({**COSTS, "seconds": 1e300})): "does not hold",
        forged(state, meta({**COSTS, "rule": "zzz"})): "does not hold",  # never the file's
        forged(state, meta()) + b"\x00" * (1 << 21): "is larger than this supernet's weights",
    }


def test_a_hostile_kept_file_is_a_reason_to_train_again(tmp_path, small_net):
    before = {k: v.clone() for k, v in small_net.state_dict().items()}
    for i, (content, reason) in enumerate(hostile(small_net).items()):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / kept.FILE).write_bytes(content)
        training, why = kept.load(folder, small_net, DIGEST, TEMPLATE)
        assert training is None and why.startswith(f"{kept.FILE} "), i
        assert reason in why, (i, why)
    after = small_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing loaded in part


def test_a_link_or_fifo_in_its_place_is_not_opened_and_is_replaced(tmp_path, small_net):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "kept.safetensors"
    target.write_bytes(saved(elsewhere, small_net))
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / kept.FILE).symlink_to(target)
    assert kept.load(folder, small_net, DIGEST, TEMPLATE) == (
        None,
        "supernet.safetensors is a link, not a file",
    )
    saved(folder, small_net, "2" * 64)
    assert not (folder / kept.FILE).is_symlink()
    assert kept._metadata(target.read_bytes())["key"] == DIGEST  # the link's target untouched
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / kept.FILE)
    assert kept.load(fifo, small_net, DIGEST, TEMPLATE)[1] == (
        "supernet.safetensors is a fifo, not a file"
    )


def test_a_resumed_search_says_it_loaded_the_supernet(tmp_path, capsys):
    out = tmp_path / "s"
    common = ["search", TINY, "--data", "digits", "--evaluator", "supernet", "--epochs", "1"]
    assert run_cli([*common, "--trials", "2", "--out", out], capsys)[0] == 0
    code, stdout, stderr = run_cli([*common, "--trials", "3", "--out", out], capsys)
    assert code == 0, stderr
    line = next(x for x in stdout.splitlines() if x.startswith("supernet"))
    assert line.startswith("supernet (kept in supernet.safetensors): 36 architectures")
    assert line.endswith("; not trained again")


def test_a_resume_of_another_space_is_refused_before_the_supernet_trains(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "s"
    common = ["search", "--data", "digits", "--evaluator", "supernet", "--epochs", "1"]
    assert run_cli([common[0], TINY, *common[1:], "--trials", "2", "--out", out], capsys)[0] == 0
    other = tmp_path / "tiny.cnn"
    other.write_text(TINY.read_text().replace("choice(8, 16, 32", "choice(8, 16"))
    monkeypatch.setattr(one_shot, "train", lambda *a, **k: pytest.fail("trained first"))
    code, _, err = run_cli([common[0], other, *common[1:], "--trials", "3", "--out", out], capsys)
    assert code == 1 and "E0607" in err and "was made from another search space" in err


def test_a_resume_that_would_train_other_weights_is_refused_before_training(
    tmp_path, capsys, monkeypatch
):
    """Its trials would be scored by another supernet than the study's, and ranked with them."""
    out = tmp_path / "s"
    common = ["search", TINY, "--data", "digits", "--evaluator", "supernet", "--out", out]
    assert run_cli([*common, "--trials", "2", "--epochs", "1"], capsys)[0] == 0
    monkeypatch.setattr(one_shot, "train", lambda *a, **k: pytest.fail("trained first"))
    code, _, err = run_cli([*common, "--trials", "3", "--epochs", "2"], capsys)
    assert code == 1 and "error[E0604]: study `tiny` was scored by weights trained with" in err
    assert "= note: the study was made with epochs = 1, this run has 2" in err
    for changed in (["--lr", "0.02"], ["--seed", "1"]):
        code, _, err = run_cli([*common, "--trials", "3", "--epochs", "1", *changed], capsys)
        assert code == 1 and "E0604" in err
    assert run_cli([*common, "--trials", "3", "--epochs", "1"], capsys)[0] == 0  # loaded
