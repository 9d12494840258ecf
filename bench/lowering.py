"""Benchmark (not a test): `cnnc.load` models against torchvision's, side by side in one process.

For ResNet-50, MobileNetV2 and GoogLeNet, at batch 8:
- build: parse, elaborate, make and initialise the modules (cnnc) against the constructor;
- forward: eager, eval mode, under `torch.inference_mode()`;
- train step: forward, cross-entropy, backward, SGD step with momentum, zero_grad;
- optimised: `cnnc.load(..., optimize="inference")` against torchvision's eager forward.
Contenders alternate within each round (interleaved) and the medians are compared; a ratio is
cnnc's time over torchvision's, so below 1.00 is faster. Goals: build, forward and train step
≤ 1.00 within noise; optimised ≤ 1/1.15 = 0.87 for ResNet-50 and MobileNetV2. cnnc.load parses a
file once per process (`dsl.parse`), so its build rounds after the first time elaboration and
lowering, as a search that builds many networks pays them.

    python bench/lowering.py [--rounds 3] [--repeat 2] [--models resnet50,mobilenet_v2,googlenet]
    python bench/lowering.py --device cuda [--amp] [--compile]   # on a GPU: bf16, channels_last

With `--device cuda`, the models run in channels_last with `--amp` (bf16 autocast) and, with
`--compile`, through `torch.compile`; the figures are synchronised wall times.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torchvision
from timing import ROOT, interleaved, machine, median, ms, ratio, table

import cnnc

BUILD_REPEAT = 3  # a build takes ~50 ms, and varies by ±10 % from run to run on a shared machine
TORCHVISION = {
    "resnet50": lambda: torchvision.models.resnet50(),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
    "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True),
}
GOALS = {"build": 1.0, "forward": 1.0, "train step": 1.0, "optimised forward": 1 / 1.15}


class Runner:
    """Runs the models on one device, with the options a GPU run takes."""

    def __init__(self, device: str, amp: bool, compiled: bool):
        self.device = torch.device(device)
        self.amp = amp
        self.compiled = compiled

    def prepare(self, model):
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compiled else model

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def sync(self, fn):
        def run():
            fn()
            if self.device.type == "cuda":
                torch.cuda.synchronize()

        return run

    def batch(self, size: int = 8):
        x = torch.randn(size, 3, 224, 224, device=self.device)  # [8, 3, 224, 224]
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.randint(0, 1000, (size,), device=self.device)  # [8]


def forward(runner: Runner, model, x):
    def run():
        with torch.inference_mode(), runner.autocast():
            model(x)

    return runner.sync(run)


def train_step(runner: Runner, model, x, target):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run():
        with runner.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return runner.sync(run)


def compare(name: str, runner: Runner, rounds: int, repeat: int) -> list[list[str]]:
    path = ROOT / "zoo" / f"{name}.cnn"
    makers = {"cnnc": lambda: cnnc.load(path), "torchvision": TORCHVISION[name]}
    for make in makers.values():
        make()  # warm-up: imports, the parsed file, torch's first-use costs
    build = interleaved(makers, rounds, BUILD_REPEAT)
    ours, theirs = runner.prepare(cnnc.load(path, seed=0)), runner.prepare(TORCHVISION[name]())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    fast = runner.prepare(cnnc.load(path, seed=0, optimize="inference"))
    x, target = runner.batch()
    ours.eval(), theirs.eval()
    eager = {
        "cnnc": forward(runner, ours, x),
        "torchvision": forward(runner, theirs, x),
        "optimised": forward(runner, fast, x),
    }
    for fn in eager.values():
        fn()  # warm-up: oneDNN primitives, the allocator, compiled graphs
    forward_times = interleaved(eager, rounds, repeat)
    ours.train(), theirs.train()
    steps = {
        "cnnc": train_step(runner, ours, x, target),
        "torchvision": train_step(runner, theirs, x, target),
    }
    for fn in steps.values():
        fn()  # warm-up: the optimiser's state
    step_times = interleaved(steps, rounds, repeat)
    return [
        _row(name, "build", build["cnnc"], build["torchvision"]),
        _row(name, "forward", forward_times["cnnc"], forward_times["torchvision"]),
        _row(name, "train step", step_times["cnnc"], step_times["torchvision"]),
        _row(name, "optimised forward", forward_times["optimised"], forward_times["torchvision"]),
    ]


def _row(model: str, what: str, ours: list[float], theirs: list[float]) -> list[str]:
    r = median(ours) / median(theirs)
    goal = GOALS[what]
    verdict = "ok" if r <= goal else ("noise?" if r <= goal * 1.05 else "over")
    return [
        model,
        what,
        ms(median(ours)),
        ms(median(theirs)),
        ratio(median(ours), median(theirs)),
        f"≤ {goal:.2f} {verdict}",
        f"{min(ours) / min(theirs):.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of each contender"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per round of forward and step; the least counts"
    )
    parser.add_argument("--models", default=",".join(TORCHVISION), help="comma-separated zoo names")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (a GPU run)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both sides")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runner = Runner(args.device, args.amp, args.compile)
    device = (
        torch.cuda.get_device_name()
        if runner.device.type == "cuda"
        else f"CPU, {args.threads} threads"
    )
    print(f"# Lowering benchmark · {machine()}")
    print(
        f"{device}, batch 8, amp={args.amp}, compile={args.compile}, median of {args.rounds} "
        f"interleaved rounds (each the least of {BUILD_REPEAT} builds, of {args.repeat} forward "
        f"runs, of {args.repeat} steps); "
        "ratio = cnnc ÷ torchvision\n"
    )
    rows = [
        row
        for name in args.models.split(",")
        for row in compare(name.strip(), runner, args.rounds, args.repeat)
    ]
    print(table(["model", "what", "cnnc", "torchvision", "ratio", "goal", "best-of ratio"], rows))


if __name__ == "__main__":
    main()
