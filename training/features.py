"""Features and neighbours, as the lecture ends: a trained network's activations at a label as an
embedding of each image, L2 nearest neighbours in that space, and a 2-D map of it.

`extract` taps a compiled module at a label (the last tensor made inside it), global-average-pools a
feature map to a vector and returns one row per image. A features file (`.npz`) holds `features`
[N, D] float32, `labels` [N], `split` [N] (0 train, 1 held out), `paths` [N] (the image files of a
`folder:` data set, else `name#index`), `thumbs` [N, h, w, C] uint8 (for drawing) and `meta` (JSON:
the program, network, arguments, weights, label, input shape and normalisation, so a new image can be
embedded the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import fx

from cnnc.dsl.diagnostics import CnncError, error
from cnnc.training import data as datasets
from cnnc.training import features_file

THUMB = 64  # thumbnails are at most this many pixels a side


@dataclass(frozen=True)
class Images:
    """A data set in its original order, with the split and where each image came from."""

    x: torch.Tensor  # [N, C, H, W] float32, standardised with the training part's statistics
    y: torch.Tensor  # [N] int64
    split: np.ndarray  # [N] 0 train, 1 held out
    paths: list[str]
    thumbs: np.ndarray  # [N, h, w, C] uint8
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_images(
    spec: str, size: datasets.Size, seed: int, val_fraction: float = 0.2, mean=None, std=None
) -> Images:
    """`training.data`'s loading and split, keeping each image's origin (its file, for `folder:`).
    Standardised with `mean` and `std` where given (a run's, as it trained), else with the training
    part's own statistics."""
    kind, arg = datasets._parse_spec(spec)
    raw = datasets._load_raw(kind, arg, size)
    train_idx, val_idx = datasets.split_indices(raw.y, val_fraction, seed)
    split = np.zeros(len(raw.y), dtype=np.int8)
    split[val_idx.numpy()] = 1
    if mean is None:
        mean, std = datasets.channel_stats(raw.x[train_idx])
    else:
        mean, std = (torch.tensor(v, dtype=torch.float64) for v in (mean, std))
    paths = list(raw.paths) or [
        f"{spec}#{i}" for i in range(len(raw.y))
    ]  # the files read, for `folder:`
    return Images(
        datasets.standardise(raw.x, mean, std),
        raw.y,
        split,
        paths,
        thumbnails(raw.x),
        tuple(mean.tolist()),
        tuple(std.tolist()),
    )


def thumbnails(x: torch.Tensor) -> np.ndarray:
    """Raw images [N, C, H, W] → uint8 [N, h, w, C], at most THUMB pixels a side, for drawing."""
    side = max(x.shape[-2:])
    if side > THUMB:
        x = datasets.resize(x, *(round(d * THUMB / side) for d in x.shape[-2:]))
    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (x - lo) / (hi - lo).clamp_min(1e-6) * 255
    return scaled.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def tap(model: fx.GraphModule, label: str) -> fx.GraphModule:
    """A copy of `model` whose output is the last tensor made under `label` (a module path)."""
    prefix = tuple(label.split("."))
    graph = model.cnnc_graph
    ids = [n.id for n in graph.nodes_in_order() if tuple(n.path[: len(prefix)]) == prefix]
    if not ids:
        from difflib import get_close_matches

        from cnnc.compiler.elaborate.derive import labels

        near = get_close_matches(label, labels(graph.nodes_in_order()), n=3)
        raise CnncError(
            error(
                "E0603",
                f"--at names no layer `{label}` of `{graph.network}`",
                None,
                helps=(f"labels near it: {', '.join(near)}",)
                if near
                else ("`cnnc summary FILE` lists the labels",),
            )
        )
    target = next(n for n in reversed(list(model.graph.nodes)) if n.meta.get("cnnc_id") in set(ids))
    new = fx.Graph()
    mapping: dict = {}
    for node in model.graph.nodes:
        if node.op == "output":
            break
        mapping[node] = new.node_copy(node, lambda n: mapping[n])
        if node is target:
            break
    new.output(mapping[target])
    return fx.GraphModule(model, new)


@torch.inference_mode()
def extract(model, label: str, x: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """One embedding per image: the activations at `label`, global-average-pooled if a feature map."""
    tapped = tap(model, label).eval()
    rows = []
    for start in range(0, len(x), batch_size):
        out = tapped(x[start : start + batch_size])  # [B, C, H, W] or [B, D]
        if out.dim() == 4:
            out = out.mean(dim=(2, 3))  # [B, C]
        rows.append(out.flatten(1).float())
    return torch.cat(rows).numpy()


def save(path: Path, features: np.ndarray, images: Images, meta: dict):
    """Write a features file to exactly `path` (see `training.features_file`)."""
    arrays = {
        "features": features.astype(np.float32),
        "labels": images.y.numpy(),
        "split": images.split,
        "paths": np.array(images.paths, dtype=str),
        "thumbs": images.thumbs,
    }
    return features_file.save(path, arrays, meta)


read = features_file.read  # a features file, every array and `meta` checked (untrusted data)


def nearest(
    features: np.ndarray, query: np.ndarray, pool: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into `features`) of the `k` rows of `pool` nearest `query` in L2, and their distances."""
    d = np.sqrt(((features[pool] - query[None, :]) ** 2).sum(axis=1))  # [P]
    order = np.argsort(d, kind="stable")[:k]
    return pool[order], d[order]


def knn_accuracy(features: np.ndarray, labels: np.ndarray, split: np.ndarray, k: int = 5) -> float:
    """Held-out images classified by a majority vote of their `k` nearest training images (L2)."""
    train, held = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    if len(held) == 0 or len(train) == 0:
        return float("nan")
    a, b = features[held], features[train]
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]  # [H, T] squared distances
    near = np.argsort(d, axis=1, kind="stable")[:, :k]  # [H, k]
    votes = labels[train][near]  # [H, k]
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return float((predicted == labels[held]).mean())
