"""Benchmark (not a test): `cnnc summary --train`'s peak-memory estimate against the measured peak.

For three zoo models at batch 8, with SGD (momentum) and Adam, one training step (forward,
cross-entropy, backward, step, zero_grad to None) is measured after a first step has made the
optimiser's state:
- on the CPU, with torch's profiler (`profile_memory=True`): every allocation and free in time
  order, summed, gives the peak of what the step allocates; the weights, buffers, optimiser state
  and input that live across steps are added;
- on a GPU, `torch.cuda.max_memory_allocated` around the step.
Goal: the estimate within 15 % of the measured peak.

    python bench/memory.py [--batch 8] [--models resnet18,mobilenet_v2,googlenet] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
from timing import ROOT, machine, table

import cnnc.api
from cnnc.compiler.analysis.training_memory import training_memory

MIB = 2**20


def make_step(model, x, optimizer_name: str):
    params = list(model.parameters())
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(params, lr=1e-3)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # [N]

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, optimizer


def resident_bytes(model, optimizer, x) -> int:
    """What lives across steps: weights, buffers, optimiser state, the input batch."""
    tensors = [*model.parameters(), *model.buffers(), x]
    tensors += [
        t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)
    ]
    return sum(t.numel() * t.element_size() for t in tensors)


def cpu_peak(model, x, optimizer_name: str) -> int:
    from torch.profiler import ProfilerActivity, profile

    step, optimizer = make_step(model, x, optimizer_name)
    step()  # the optimiser's state exists from here on
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage  # allocations minus frees of the op itself
        peak = max(peak, current)
    return peak + resident_bytes(model, optimizer, x)


def cuda_peak(model, x, optimizer_name: str) -> int:
    step, _ = make_step(model, x, optimizer_name)
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def measure(name: str, batch: int, device: str) -> list[list[str]]:
    path = ROOT / "zoo" / f"{name}.cnn"
    graph = cnnc.api.graph(path)
    model = cnnc.api.load(path, seed=0).to(device).train()
    x = torch.randn(batch, *graph.input_type.shape, device=device)  # [N, C, H, W]
    rows = []
    for optimizer in ("sgd", "adam"):
        measured = (cuda_peak if device.startswith("cuda") else cpu_peak)(model, x, optimizer)
        estimate = training_memory(graph, batch, optimizer).total
        error = estimate / measured - 1
        verdict = "ok" if abs(error) <= 0.15 else "over"
        rows.append(
            [
                name,
                optimizer,
                f"{measured / MIB:,.1f} MiB",
                f"{estimate / MIB:,.1f} MiB",
                f"{error:+.1%}",
                verdict,
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default="resnet18,mobilenet_v2,googlenet")
    parser.add_argument(
        "--device", default="cpu", help="cpu (profiler) or cuda (max_memory_allocated)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# Training-memory benchmark · {machine()}")
    print(f"{args.device}, batch {args.batch}, float32; estimate = `cnnc summary --train`\n")
    rows = [
        r for name in args.models.split(",") for r in measure(name.strip(), args.batch, args.device)
    ]
    print(table(["model", "optimiser", "measured peak", "estimate", "error", "goal ±15 %"], rows))


if __name__ == "__main__":
    main()
