"""Pictures of a features file: the query beside its nearest neighbours, and a 2-D map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnc.dsl import safefs


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(data: dict, label) -> str:
    """A label as drawn: the file's class name, escaped for the terminal and for matplotlib's `$…$`."""
    from cnnc.training.features_file import class_name

    return class_name(data, int(label)).replace("$", r"\$")


def _show(ax, thumb: np.ndarray, title: str) -> None:
    """One thumbnail [h, w, C] uint8 on an axis without ticks."""
    if thumb.shape[-1] == 1:
        ax.imshow(thumb[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(thumb, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_neighbours(data: dict, query, found, dist, out: Path) -> None:
    """The query (an index, or a thumbnail of an outside image) beside its neighbours, nearest first."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(found) + 1, figsize=(1.7 * (len(found) + 1), 2.1))
    if isinstance(query, (int, np.integer)):
        _show(
            axes[0],
            data["thumbs"][query],
            f"query #{query}\nlabel {_label(data, data['labels'][query])}",
        )
    else:
        _show(axes[0], query, "query")
    for ax in axes[1:]:
        for side in ax.spines.values():
            side.set_edgecolor("#888")
    for rank, (ax, i, d) in enumerate(zip(axes[1:], found, dist), 1):
        _show(ax, data["thumbs"][i], f"{rank}: label {_label(data, data['labels'][i])}\nL2 {d:.2f}")
    for side in axes[0].spines.values():
        side.set_edgecolor("#c00")
        side.set_linewidth(2)
    fig.tight_layout()
    with safefs.replacing_path(out) as (tmp, _):
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def project(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """[N, D] → [N, 2] by PCA or t-SNE (scikit-learn); N ≥ 3. One dimension is drawn on a line."""
    if features.shape[1] == 1:
        features = np.concatenate([features, np.zeros_like(features)], axis=1)  # [N, 2]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(features) - 1) / 3))
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(features)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(features)


def draw_map(data: dict, method: str, out: Path) -> None:
    plt = _pyplot()
    xy = project(data["features"], method)
    labels = data["labels"]
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, c in enumerate(classes):
        mask = labels == c
        ax.scatter(
            xy[mask, 0], xy[mask, 1], s=8, color=cmap(k % cmap.N), label=_label(data, c), alpha=0.8
        )
    ax.set_title(
        f"features at `{data['meta']['at']}` of {data['meta']['network']} ({method.upper()})"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(title="label", fontsize=8, markerscale=2, loc="best")
    fig.tight_layout()
    with safefs.replacing_path(out) as (tmp, _):
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
