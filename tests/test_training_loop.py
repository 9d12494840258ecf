"""The one trainer (`training/loop.py`) that `cnnc train` and the search's evaluator share: its batches,
schedule, optimisers, loss checks, frozen BatchNorm layers and evaluation, and both callers on it."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from cnnc.dsl.diagnostics import CnncError  # noqa: E402
from cnnc.training import loop  # noqa: E402
from cnnc.training.data import Dataset  # noqa: E402
from cnnc.training.loop import Recipe, Schedule, Trainer, batch_bounds, evaluate  # noqa: E402

CPU = loop.place("cpu")


def recipe(**given) -> Recipe:
    rules = {"epochs": 1, "batch_size": 4, "lr": 0.1, "optimizer": "sgd", "weight_decay": 0.0}
    return Recipe(**(rules | given))


def data(n: int = 12, seed: int = 0) -> Dataset:
    """n images [1, 4, 4] of 2 classes (the class is the sign of the mean), 4 held out."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 4, 1, 4, 4, generator=gen)  # [n + 4, 1, 4, 4]
    y = (x.mean(dim=(1, 2, 3)) > 0).long()  # [n + 4]
    return Dataset(x[:n], y[:n], x[n:], y[n:], 2, (1, 4, 4), "toy", (0.0,), (1.0,))


def net(seed: int = 0, norm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 2, 3, padding=1)]  # [N, 2, 4, 4]
    layers += [nn.BatchNorm2d(2)] if norm else []
    layers += [nn.Flatten(), nn.Linear(32, 2)]  # [N, 32] → [N, 2]
    return nn.Sequential(*layers)


@pytest.mark.parametrize(
    "n, size, keep_last, bounds",
    [
        (10, 4, False, [(0, 4), (4, 8)]),  # cnnc train: full batches only
        (10, 4, True, [(0, 4), (4, 8), (8, 10)]),  # the search: a trailing batch of two kept
        (9, 4, True, [(0, 4), (4, 8)]),  # … but never one of one (BatchNorm needs two)
        (1, 4, True, [(0, 1)]),
        (3, 1, True, []),  # batches of one are never trained
        (3, 4, False, []),
    ],
)
def test_batches(n, size, keep_last, bounds):
    assert list(batch_bounds(n, size, keep_last)) == bounds


def test_the_schedule_warms_up_then_follows_a_cosine_to_zero():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
    schedule = Schedule(opt, recipe(epochs=2, lr=1.0, warmup=0.5), steps_per_epoch=4)
    rates = [schedule.lr()]
    for _ in range(8):
        schedule.step()
        rates.append(opt.param_groups[0]["lr"])
    cosine = [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(7)]
    assert rates == [0.5, 1.0, *cosine]
    assert rates[-1] == 0.0


@pytest.mark.parametrize(
    "name, kind, fields",
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.9, "weight_decay": 0.01}),
    ],
)
def test_one_optimiser_factory_trains_only_what_is_not_frozen(name, kind, fields):
    model = net(norm=True)
    model[1].requires_grad_(False)
    opt = loop.make_optimizer(model, recipe(optimizer=name, lr=0.5, weight_decay=0.01))
    assert type(opt) is kind
    group = opt.param_groups[0]
    assert {k: group[k] for k in fields} == fields and group["lr"] == 0.5
    trained = [p for p in model.parameters() if p.requires_grad]
    assert [id(p) for p in group["params"]] == [id(p) for p in trained] and len(trained) == 4


def test_nothing_to_train_is_a_user_error():
    model = net()
    model.requires_grad_(False)
    with pytest.raises(CnncError) as info:
        loop.make_optimizer(model, recipe())
    assert [d.code for d in info.value.diagnostics] == ["E0603"]
    assert "every parameter is frozen" in str(info.value)


def test_evaluation_gives_the_mean_loss_and_the_accuracy():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        model.bias.zero_()
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])  # [3, 3]
    y = torch.tensor([0, 0, 0])  # [3]: the second is wrong
    loss, accuracy = evaluate(model, x, y, batch_size=2, where=CPU)
    expected = nn.functional.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(expected, rel=1e-6) and accuracy == 2 / 3
    assert not model.training


class NanAt(nn.Module):
    """A net whose output turns NaN from its `at`-th call on (counted from 1)."""

    def __init__(self, at: int):
        super().__init__()
        self.inner, self.at, self.calls = net(), at, 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)  # [B, 2]
        return out * math.nan if self.calls >= self.at else out


@pytest.mark.parametrize("every, calls, updates", [(1, 3, 2), (2, 4, 3), (4, 4, 3), (5, 5, 4)])
def test_a_loss_that_is_not_finite_stops_the_epoch_at_the_next_check(every, calls, updates):
    """The sum of the losses is checked every `check_every` steps, before that step's update."""
    model = NanAt(3)
    trainer = Trainer(model, recipe(batch_size=2, check_every=every), CPU, 12)
    seen = []
    bad = trainer.epoch(data().train_x, data().train_y, lambda step, *_: seen.append(step))
    assert math.isnan(bad) and model.calls == calls
    assert seen == list(range(1, updates + 1)) and trainer.schedule.step_count == updates


@pytest.mark.parametrize("freeze_norms, kept", [(True, True), (False, False)])
def test_a_frozen_batchnorm_keeps_its_statistics_when_the_recipe_says_so(freeze_norms, kept):
    model = net(norm=True)
    model[1].requires_grad_(False)
    before = model[1].running_mean.clone()
    trainer = Trainer(model, recipe(freeze_norms=freeze_norms), CPU, 12)
    assert trainer.epoch(data().train_x, data().train_y) is None
    assert torch.equal(model[1].running_mean, before) == kept


def test_the_shuffles_are_the_runs_own_and_a_resumed_run_draws_the_same():
    rules = recipe(batch_size=2, seed=7)
    first, resumed, second = [], [], []
    fresh = Trainer(net(), rules, CPU, 12)
    rng = torch.get_rng_state()
    fresh.epoch(data().train_x, data().train_y, lambda s, idx, *_: first.append(idx.tolist()))
    fresh.epoch(data().train_x, data().train_y, lambda s, idx, *_: second.append(idx.tolist()))
    assert torch.equal(torch.get_rng_state(), rng)
    later = Trainer(net(), rules, CPU, 12)
    later.skip(1)
    later.epoch(data().train_x, data().train_y, lambda s, idx, *_: resumed.append(idx.tolist()))
    assert resumed == second != first


def test_cnnc_train_and_the_search_train_through_the_one_trainer(tmp_path, monkeypatch):
    """Neither caller keeps a loop of its own: each epoch of each goes through `Trainer.epoch`."""
    from cnnc.search.evaluators.train import train_and_evaluate
    from cnnc.training.train import TrainOptions, train_run

    calls = []
    epoch = Trainer.epoch

    def counted(self, *args, **kwargs):
        calls.append(self.recipe)
        return epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "epoch", counted)
    result = train_and_evaluate(net(), data(), epochs=2, batch_size=4, device="cpu")
    rows = train_run(net(), data(), TrainOptions(epochs=1, batch_size=4), tmp_path, log=print)
    assert result.failed is None and len(result.history) == 2 and len(rows) == 1
    search, train = calls[0], calls[2]
    assert len(calls) == 3 and calls[1] == search
    assert (search.keep_last, search.freeze_norms, search.check_every) == (True, False, 10)
    assert (train.keep_last, train.freeze_norms, train.check_every) == (False, True, 1)
    assert search.weight_decay == 5e-4 and train.weight_decay == 5e-4
