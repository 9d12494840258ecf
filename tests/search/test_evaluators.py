"""search/evaluators: training on digits, failure handling, and zero-cost proxies by hand."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnc.dsl.diagnostics import CnncError
from cnnc.search.evaluators.proxy import agreement, grad_norm, naswot, score_all, synflow
from cnnc.search.evaluators.train import TrainResult, train_and_evaluate
from cnnc.training.data import load_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_cnn(seed: int = 0) -> nn.Module:
    """Conv-ReLU-Pool-Linear for [N, 1, 8, 8] digits: 2,762 parameters."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),  # [N, 16, 8, 8]
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, 16, 4, 4]
        nn.Flatten(),  # [N, 256]
        nn.Linear(256, 10),  # [N, 10]
    )


def bn_cnn(seed: int = 0) -> nn.Module:
    """A net with every kind of state a proxy could disturb: BN running stats, dropout."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),  # [N, 8, 8, 8]
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # [N, 8, 4, 4]
        nn.Flatten(),  # [N, 128]
        nn.Dropout(0.3),
        nn.Linear(128, 10),  # [N, 10]
    )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor], training: bool) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(
        torch.equal(after[k], before[k]) and after[k].dtype == before[k].dtype for k in before
    )
    assert model.training == training
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Training


def test_tiny_cnn_learns_digits(digits):
    result = train_and_evaluate(tiny_cnn(), digits, epochs=3, device="cpu")
    assert result.failed is None and len(result.history) == 3
    assert result.accuracy == result.history[-1] > 0.8
    assert result.seconds > 0  # how fast is bench/search.py's question, not a test's


def test_training_is_seeded_and_leaves_global_rng_alone(digits):
    rng = torch.get_rng_state()
    a = train_and_evaluate(tiny_cnn(), digits, epochs=1, seed=5, device="cpu")
    assert torch.equal(torch.get_rng_state(), rng)
    b = train_and_evaluate(tiny_cnn(), digits, epochs=1, seed=5, device="cpu")
    assert a.history == b.history


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adamw", 1e-2), ("rmsprop", 1e-3)])
def test_every_optimizer_trains(digits, optimizer, lr):
    result = train_and_evaluate(
        tiny_cnn(), digits, epochs=2, lr=lr, optimizer=optimizer, label_smoothing=0.1, device="cpu"
    )
    assert result.failed is None and result.accuracy > 0.8


def test_report_is_called_after_each_epoch(digits):
    calls = []
    result = train_and_evaluate(
        tiny_cnn(), digits, epochs=2, report=lambda e, a: calls.append((e, a))
    )
    assert calls == [(1, result.history[0]), (2, result.history[1])]


class Pruned(Exception):
    pass


def test_an_exception_from_report_propagates_and_the_model_is_restored(digits):
    model = tiny_cnn().eval()
    calls = []

    def prune_at_two(epoch, accuracy):
        calls.append(epoch)
        if epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        train_and_evaluate(model, digits, epochs=5, report=prune_at_two)
    assert calls == [1, 2] and not model.training
    assert all(p.grad is None for p in model.parameters())


def test_a_huge_learning_rate_fails_with_nan(digits):
    result = train_and_evaluate(tiny_cnn(), digits, epochs=3, lr=1e10, device="cpu")
    assert result == TrainResult(0.0, (), result.seconds, "loss became NaN at epoch 1")


class NanAfter(nn.Module):
    """Learns normally until its `calls`-th training forward, then outputs NaN."""

    def __init__(self, calls: int):
        super().__init__()
        self.net = tiny_cnn()
        self.calls = calls

    def forward(self, x):
        logits = self.net(x)  # [N, 10]
        if self.training:
            self.calls -= 1
            if self.calls < 0:
                return logits * float("nan")
        return logits


def test_a_nan_output_names_the_epoch(digits):
    steps_per_epoch = math.ceil(len(digits.train_y) / 64)  # 1438 samples: 23 batches
    result = train_and_evaluate(NanAfter(steps_per_epoch + 3), digits, epochs=3)
    assert result.failed == "loss became NaN at epoch 2"
    assert len(result.history) == 1 and result.accuracy == 0.0


class Raises(nn.Module):
    def __init__(self, exc: BaseException):
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.exc = exc

    def forward(self, x):
        raise self.exc


@pytest.mark.parametrize(
    "exc, message",
    [
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB",
        ),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 B"),
            "out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 B",
        ),
        (MemoryError(), "out of memory: MemoryError"),
    ],
)
def test_out_of_memory_becomes_failed(digits, exc, message):
    result = train_and_evaluate(Raises(exc), digits, epochs=1)
    assert result.failed == message and result.history == ()


def test_other_errors_propagate_and_restore_the_mode(digits):
    model = Raises(RuntimeError("mat1 and mat2 shapes cannot be multiplied")).eval()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train_and_evaluate(model, digits, epochs=1)
    assert not model.training


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "adam"},
        {"device": "tpu"},
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"label_smoothing": 1.0},
    ],
)
def test_bad_options_raise_e0603(digits, kwargs):
    with pytest.raises(CnncError) as info:
        train_and_evaluate(tiny_cnn(), digits, **kwargs)
    assert [d.code for d in info.value.diagnostics] == ["E0603"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_without_a_gpu_is_an_error(digits):
    with pytest.raises(CnncError):
        train_and_evaluate(tiny_cnn(), digits, device="cuda")


# ---------------------------------------------------------------------------------------------
# synflow


def two_linear(bias: bool) -> nn.Module:
    """W1 = [[1, -2], [3, 0.5]], W2 = [[-1, 2]]; with bias, b1 = [-1, 0], b2 = [5]."""
    net = nn.Sequential(nn.Linear(2, 2, bias=bias), nn.ReLU(), nn.Linear(2, 1, bias=bias))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 2.0]]))
        if bias:
            net[0].bias.copy_(torch.tensor([-1.0, 0.0]))
            net[2].bias.copy_(torch.tensor([5.0]))
    return net


@pytest.mark.parametrize(
    "bias, expected",
    [
        # a = |W1|·1 = [3, 3.5]; c = |W2|ᵀ = [1, 2]; ∂R/∂W2 = a, ∂R/∂W1[j] = c_j,
        # so score = 2 Σ a_j c_j
        (False, 2 * (3 * 1 + 3.5 * 2)),
        # hidden = a + |b1| = [4, 3.5]: W2 part Σ c_j hidden_j = 11; W1 part Σ c_j a_j = 10;
        # biases are not scored
        (True, 11 + 10),
    ],
)
def test_synflow_matches_hand_value(bias, expected):
    net = two_linear(bias)
    before = snapshot(net)
    assert synflow(net, (2,)) == pytest.approx(expected, rel=1e-12)
    assert_unchanged(net, before, training=True)


def test_synflow_leaves_a_batchnorm_net_unchanged():
    net = bn_cnn()
    before = snapshot(net)
    score = synflow(net, (1, 8, 8))
    assert score > 0 and math.isfinite(score)
    assert_unchanged(net, before, training=True)


# ---------------------------------------------------------------------------------------------
# naswot

# codes of X below: [1, 0, 1], [0, 0, 1], [1, 1, 0];
# agreements K = [[3, 2, 1], [2, 3, 0], [1, 0, 3]], det K = 3·9 − 2·6 + 1·(−3) = 12
X = torch.tensor([[1.0, -1.0, 2.0], [-1.0, -2.0, 3.0], [4.0, 5.0, -6.0]]).view(
    3, 1, 1, 3
)  # [3, 1, 1, 3]


class Relus(nn.Module):
    """Three ReLU-likes with the same codes (module, functional, ReLU6), and one that is not."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.relu6 = nn.ReLU6()
        self.tanhish = nn.Hardtanh()  # min_val = -1: not a ReLU, not counted

    def forward(self, x):
        x = self.relu(x.flatten(1))  # [3, 3]
        x = F.relu(x)  # [3, 3], same codes again
        x = self.relu6(x)  # [3, 3], same codes again
        return self.tanhish(x)


def test_agreement_kernel_by_hand():
    active = X.flatten(1) > 0  # [3, 3]
    expected = torch.tensor([[3, 2, 1], [2, 3, 0], [1, 0, 3]], dtype=torch.float64)
    assert torch.equal(agreement(active), expected)


def test_naswot_matches_hand_value_for_one_relu():
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert naswot(net, X) == pytest.approx(math.log(12), rel=1e-12)


def test_naswot_sums_module_and_functional_relus():
    assert naswot(Relus(), X) == pytest.approx(math.log(3**3 * 12), rel=1e-12)  # K tripled


def test_naswot_of_identical_codes_is_minus_infinity():
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    same = torch.tensor([[1.0, -1.0], [2.0, -5.0], [0.5, -0.1]]).view(
        3, 1, 1, 2
    )  # codes all [1, 0]
    assert naswot(net, same) == -math.inf  # K = 2·11ᵀ has rank 1


def test_naswot_leaves_a_batchnorm_net_unchanged(digits):
    net = bn_cnn()
    before = snapshot(net)
    score = naswot(net, digits.train_x[:32])
    assert math.isfinite(score) and score == naswot(net, digits.train_x[:32])
    assert_unchanged(net, before, training=True)


# ---------------------------------------------------------------------------------------------
# grad_norm and score_all


def test_grad_norm_matches_softmax_gradient_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 1, 0])  # [5, 1, 2, 2], [5]
    flat = x.flatten(1).double()  # [5, 4]
    w, b = net[1].weight.double(), net[1].bias.double()  # [3, 4], [3]
    err = torch.softmax(flat @ w.T + b, dim=1) - F.one_hot(y, 3).double()  # [5, 3]: ∂CE/∂logits·B
    expected = torch.sqrt(((err.T @ flat) / 5).pow(2).sum() + (err.mean(0)).pow(2).sum())
    before = snapshot(net)
    assert grad_norm(net, x, y) == pytest.approx(expected.item(), rel=1e-5)
    assert_unchanged(net, before, training=True)


def test_score_all_reports_every_proxy_and_changes_nothing(digits):
    net = bn_cnn().eval()
    before, rng = snapshot(net), torch.get_rng_state()
    scores = score_all(net, digits, batch_size=32)
    assert scores.keys() == {"synflow", "naswot", "grad_norm", "params"}
    assert scores["params"] == sum(p.numel() for p in net.parameters()) == 72 + 16 + 1290
    assert all(math.isfinite(v) for v in scores.values())
    assert scores == score_all(net, digits, batch_size=32)
    assert_unchanged(net, before, training=False)
    assert torch.equal(torch.get_rng_state(), rng)
