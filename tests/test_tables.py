"""The tables of named choices, each entry held to its contract: every command (`cnnc/cli.py`),
evaluator, sampler and data-set kind (`search/choices.py`) has what the code and the user need, and a
missing piece is named by the failing test's parameter."""

from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pytest
from conftest import ROOT, run_cli

from cnnc import cli
from cnnc.search import choices

README = (ROOT / "README.md").read_text()


def readme_section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


# ---------------------------------------------------------------------------------------------
# Commands


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_imports_and_has_a_parser_and_help(name):
    module = cli.command_module(name)
    assert isinstance(module.HELP, str) and module.HELP.strip(), f"cnnc {name}: no HELP"
    assert callable(module.configure) and callable(module.run), f"cnnc {name}: no configure or run"
    parser = cli.build_parser(name)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [name]
    assert sub.choices[name].format_help().strip()


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_is_in_the_readme_command_table(name):
    rows = [
        line
        for line in readme_section("The command line").splitlines()
        if line.startswith("| `cnnc ")
    ]
    assert any(re.search(rf"`cnnc {re.escape(name)}[ `]", row) for row in rows), (
        f"README lacks `cnnc {name}`"
    )


def test_the_command_list_is_the_table(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    listed = re.findall(r"^    (\S+)", out, re.MULTILINE)
    assert code == 0 and listed == list(cli.COMMANDS)


def test_a_command_whose_module_does_not_import_is_an_internal_error_naming_it(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "check": cli.Command("chekc")})
    monkeypatch.delenv("CNNC_DEBUG", raising=False)
    for argv in (["check", "zoo/vgg16.cnn"], ["--help"]):
        code, out, err = run_cli(argv, capsys)
        assert code == 70 and out == "", argv
        assert (
            "internal error: the module of `cnnc check`, cnnc.commands.chekc, does not import"
            in err
        )
        assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Evaluators


@pytest.fixture(scope="module")
def digits():
    from cnnc.training.data import load_dataset

    return load_dataset("digits")


TINY_SPACE = """network tiny(classes = 10) {
    input [1, 8, 8]
    return in -> Conv(choice([4, 8], name = "w"), 3, pad = 1) -> ReLU -> GlobalAvgPool -> Flatten -> fc: Linear(classes)
}
"""


def tiny_space():
    from cnnc.search.space import load_space

    return load_space("tiny.cnn", text=TINY_SPACE)


@pytest.mark.parametrize("name", list(choices.EVALUATORS))
def test_every_evaluator_scores_a_member_of_a_tiny_space(name, digits, tmp_path, one_thread):
    from cnnc.search import driver
    from cnnc.search.space import walk

    entry = choices.EVALUATORS[name]
    assert entry.help.strip(), f"evaluator {name}: no help"
    file = tmp_path / "tiny.cnn"  # a one-shot evaluator builds its supernet from the file
    file.write_text(TINY_SPACE)
    settings = driver.Settings(file=str(file), out=tmp_path, evaluator=name, epochs=1, device="cpu")
    _, members = walk(tiny_space(), keep=True)
    outcome = entry.load()(settings, digits)(members[0].graph, lambda epoch, value: None)
    assert outcome.failed is None and math.isfinite(outcome.score), f"evaluator {name}: {outcome}"
    if entry.trains:
        assert 0.0 <= outcome.score <= 1.0  # an accuracy
    else:
        assert outcome.score == outcome.proxies[settings.proxy]


# ---------------------------------------------------------------------------------------------
# Samplers


def sampled(name: str, seed: int) -> list[dict]:
    import optuna

    from cnnc.search import driver
    from cnnc.search.driver import grid_space

    space = tiny_space()
    grid = grid_space(space)
    settings = driver.Settings(file="tiny.cnn", sampler=name)
    study = optuna.create_study(sampler=choices.SAMPLERS[name].load()(settings, space, seed))
    study.optimize(lambda t: sum(t.suggest_categorical(k, v) for k, v in grid.items()), n_trials=2)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("name", list(choices.SAMPLERS))
def test_every_sampler_is_seeded_reproducibly(name):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert choices.SAMPLERS[name].help.strip(), f"sampler {name}: no help"
    first = sampled(name, seed=3)
    assert first == sampled(name, seed=3), f"sampler {name} draws differently from the same seed"
    assert sorted(p["w"] for p in first) in ([4, 4], [4, 8], [8, 8])


@pytest.mark.parametrize("name", list(choices.SAMPLERS))
def test_every_sampler_is_in_the_readme_search_section(name):
    assert f"`{name}`" in readme_section("Architecture search"), f"README lacks sampler `{name}`"


def test_the_search_options_are_generated_from_the_tables(capsys):
    code, out, _ = run_cli(["search", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0
    assert "{tpe,random,nsga2,evolution,grid}" in flat and "{train,proxy,supernet,darts}" in flat
    for table in (choices.SAMPLERS, choices.EVALUATORS):
        for name, entry in table.items():
            assert f"{name}: {' '.join(entry.help.split())}" in flat
    assert "digits, cifar10:DIR, folder:DIR or npz:FILE (default: digits)" in flat


# ---------------------------------------------------------------------------------------------
# Data-set kinds: each with a tiny example of its own


def example_cifar10(tmp_path) -> str:
    data = (np.arange(8 * 3072) % 251).astype(np.uint8).reshape(8, 3072)
    folder = tmp_path / "cifar"
    folder.mkdir()
    batch = {b"data": data, b"labels": [i % 2 for i in range(8)]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    return f"cifar10:{folder}"


def example_folder(tmp_path) -> str:
    from PIL import Image

    for name in ("ant", "bee"):
        (tmp_path / "pngs" / name).mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (6, 5), (40 * k, 100, 200)).save(tmp_path / "pngs" / name / f"{k}.png")
    return f"folder:{tmp_path / 'pngs'}"


def example_npz(tmp_path) -> str:
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.arange(8 * 16, dtype=np.float32).reshape(8, 1, 4, 4), y=np.arange(8) % 2)
    return f"npz:{path}"


EXAMPLES = {
    "digits": (lambda tmp_path: "digits", 1797, 10),
    "cifar10": (example_cifar10, 8, 10),
    "folder": (example_folder, 8, 2),
    "npz": (example_npz, 8, 2),
}


NAMES = {
    "folder": ("ant", "bee"),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}


@pytest.mark.parametrize("kind", list(choices.DATA_KINDS))
def test_every_data_kind_loads_a_tiny_example(kind, tmp_path):
    from cnnc.training.data import load_dataset
    from cnnc.training.runs import class_names

    assert kind in EXAMPLES, f"data-set kind {kind} has no tiny example in EXAMPLES"
    make, count, classes = EXAMPLES[kind]
    spec = make(tmp_path)
    data = load_dataset(spec, 4, seed=0)
    assert len(data.train_y) + len(data.val_y) == count and data.num_classes == classes
    assert tuple(data.input_shape[1:]) == (4, 4)
    assert choices.data_kind(spec) is choices.DATA_KINDS[kind]
    names = class_names(spec, data.num_classes)
    assert names == NAMES.get(kind, tuple(str(i) for i in range(classes)))


@pytest.mark.parametrize("kind", list(choices.DATA_KINDS))
def test_every_data_kind_has_help_and_is_in_the_readme_list(kind):
    entry = choices.DATA_KINDS[kind]
    assert entry.help.strip(), f"data-set kind {kind}: no help"
    spec = f"{kind}:{entry.path}" if entry.path else kind
    assert spec in choices.data_specs()
    rows = [
        line for line in readme_section("The command line").splitlines() if line.startswith("| `")
    ]
    assert any(row.startswith(f"| `{spec}` |") for row in rows), (
        f"README's data-set list lacks `{spec}`"
    )


def test_an_unknown_data_kind_names_the_table(tmp_path):
    from cnnc.dsl.diagnostics import CnncError
    from cnnc.training.data import load_dataset

    with pytest.raises(CnncError) as info:
        load_dataset("mnist:foo")
    assert (
        info.value.diagnostics[0].helps[0] == "expected digits, cifar10:DIR, folder:DIR or npz:FILE"
    )


@pytest.mark.parametrize("kind", list(choices.DATA_KINDS))
def test_train_augments_each_kind_as_its_entry_says(kind):
    from argparse import Namespace

    from cnnc.commands.train import augmenting

    entry = choices.DATA_KINDS[kind]
    spec = f"{kind.upper()}:x" if entry.path else kind
    assert augmenting(Namespace(augment="auto", data=spec)) is entry.augment
    assert augmenting(Namespace(augment="off", data=spec)) is False


def test_train_help_names_the_kinds_from_the_table(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    flat = " ".join(out.split())
    assert (
        code == 0
        and "(auto: on for cifar10: and folder:)" in flat
        and "(auto: imagenet for folder:)" in flat
    )


def test_an_entry_names_its_function_under_cnnc_search_or_in_full():
    """The data kinds' loaders live in the training room: their targets name it in full."""
    from cnnc.search.evaluate import train_evaluator
    from cnnc.training.data import load_digits_kind
    from cnnc.training.runs import folder_classes

    assert choices.Entry("evaluate:train_evaluator", "").load() is train_evaluator
    assert choices.Entry("cnnc.training.data:load_digits_kind", "").load() is load_digits_kind
    assert choices.DATA_KINDS["digits"].load() is load_digits_kind
    assert choices.Entry(choices.DATA_KINDS["folder"].classes, "").load() is folder_classes
