"""`cnnc neighbors`: L2 nearest neighbours in a features file, a picture of them, or a 2-D map."""

from __future__ import annotations

import sys
from pathlib import Path

from cnnc.commands import common

HELP = "nearest neighbours of an image in feature space (a grid PNG), or a 2-D map of the features"
DESCRIPTION = """\
Read a features file written by `cnnc features`. With --query, print the K training images nearest
the query in L2 distance and draw the query beside them (--out, a PNG grid, as the lecture's
retrieval slide). The query is an index into the file, or an image file, embedded with the same
network, weights, label and preprocessing. A features file is data: the program and weights it
names are used only inside its own folder (or as a zoo model's name); give --run RUN to embed with a
run folder's program, weights and preprocessing instead. Labels show as the run's class names. With --map, draw every image as a point of a 2-D map of the features
(PCA, or t-SNE with --method tsne), coloured by label.

examples:
  cnnc neighbors feats.npz --query 17 -k 5 --out neighbours.png
  cnnc neighbors feats.npz --query photo.jpg -k 8
  cnnc neighbors feats.npz --query photo.jpg --run runs/pets
  cnnc neighbors feats.npz --map --method tsne --out map.png
"""


def configure(p) -> None:
    p.add_argument("features", type=Path, help="an .npz file written by `cnnc features`")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--query", metavar="INDEX_OR_IMAGE", help="an index into the file, or an image file"
    )
    what.add_argument("--map", action="store_true", help="draw a 2-D map of the features")
    p.add_argument("-k", type=int, default=5, help="how many neighbours (default 5)")
    p.add_argument(
        "--run",
        dest="run_folder",
        type=Path,
        metavar="RUN",
        help="embed an image --query with this run folder's "
        "program, weights and preprocessing (`cnnc train --out RUN`)",
    )
    p.add_argument("--method", choices=("pca", "tsne"), default="pca", help="the map's projection")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="the picture (default: neighbours.png or map.png beside the features file)",
    )


def run(args) -> int:
    from cnnc.commands.files import writing
    from cnnc.training import features as feats

    if args.k < 1:
        raise common.UsageError(f"-k must be at least 1, but got {args.k}")
    data = feats.read(args.features)
    out = args.out or args.features.with_name("map.png" if args.map else "neighbours.png")
    with writing(out, "--out"):
        if args.map:
            from cnnc.training.pictures import draw_map

            if len(data["features"]) < 3:
                raise common.UserError(
                    f"`{args.features}` holds {len(data['features'])} images: a map needs 3 or more",
                    "write features of a larger data set",
                )
            draw_map(data, args.method, out)
            print(f"wrote {out}: {len(data['features']):,} images, {args.method}", file=sys.stderr)
            return common.OK
        query, vector, exclude = query_vector(args.query, data, args)
        pool = feats_pool(data, exclude)
        if len(pool) == 0:
            raise common.UserError(
                f"`{args.features}` holds no training image to search (split 0) besides the query",
                "write features of a data set with a training part",
            )
        found, dist = feats.nearest(data["features"], vector, pool, args.k)
        print_table(query, found, dist, data)
        from cnnc.training.pictures import draw_neighbours

        draw_neighbours(data, query, found, dist, out)
    print(f"wrote {out}", file=sys.stderr)
    return common.OK


def feats_pool(data, exclude):
    import numpy as np

    pool = np.flatnonzero(data["split"] == 0)  # the training images are the database
    return pool[pool != exclude] if exclude is not None else pool


def query_vector(query: str, data, args):
    """(what to show for the query, its feature vector, its index to leave out of the results)."""
    n = len(data["features"])
    if query.lstrip("-").isdigit():
        i = int(query)
        if not 0 <= i < n:
            raise common.UsageError(
                f"--query {i} is out of range: the file holds {n:,} images (0…{n - 1})"
            )
        return i, data["features"][i], i
    path = Path(query)
    if not path.is_file():
        raise common.UsageError(
            f"--query must be an index or an image file, but `{query}` is neither"
        )
    vector, thumb = embed_image(path, data, args)
    return thumb, vector, None


def print_table(query, found, dist, data) -> None:
    """The neighbours, one a line; class names and paths come from the file: escaped."""
    from cnnc.dsl.diagnostics import printable
    from cnnc.training.features_file import class_name

    labels, paths = data["labels"], data["paths"]
    if isinstance(query, int):
        print(
            f"query #{query} (label {class_name(data, int(labels[query]))}, {printable(str(paths[query]))})"
        )
    else:
        print("query image")
    print(f"{'rank':>4}  {'index':>6}  {'label':>5}  {'distance':>9}  path")
    for rank, (i, d) in enumerate(zip(found, dist), 1):
        print(
            f"{rank:>4}  {i:>6}  {class_name(data, int(labels[i])):>5}  {d:>9.4f}  {printable(str(paths[i]))}"
        )


def embed_image(path: Path, data, args) -> tuple:
    """An outside image embedded as the file's images were: same program, weights, label and
    normalisation (checked: `training.features_file.embedding`). Returns (feature vector [D],
    thumbnail [h, w, C] uint8)."""
    import torch

    import cnnc
    from cnnc.dsl.diagnostics import printable
    from cnnc.training import data as datasets
    from cnnc.training.features import extract, thumbnails
    from cnnc.training.features_file import embedding
    from cnnc.training.runs import numbers

    how = embedding(data, args.features, args.run_folder)
    print(
        f"embedding the query with `{printable(how.program)}` at {list(how.input)}, weights "
        f"`{printable(str(how.weights))}`, mean {numbers(how.mean)}, std {numbers(how.std)}, at `{how.at}`",
        file=sys.stderr,
    )
    model = cnnc.load(
        how.program,
        network=how.network,
        args=list(how.args) or None,
        input=how.input,
        weights=how.weights,
        seed=0,
    )
    c, h, w = how.input
    if c not in (1, 3):
        raise common.UserError(
            f"`{how.network}` takes {c} channels: an image file gives 3 (or 1, averaged)",
            "query by an index into the features file instead",
        )
    x = datasets._read_image(path).unsqueeze(0)  # [1, 3, H, W]
    if c == 1:
        x = x.mean(dim=1, keepdim=True)  # [1, 1, H, W]
    x = datasets.resize(x, h, w)
    thumb = thumbnails(x)[0]
    mean, std = (torch.tensor(v, dtype=torch.float64) for v in (how.mean, how.std))
    vector = extract(model, how.at, datasets.standardise(x, mean, std))[0]
    if vector.shape != data["features"].shape[1:]:
        from cnnc.training.features_file import fail

        fail(
            args.features,
            f"its features have {data['features'].shape[1]} dimensions, but `{how.at}` gives "
            f"{vector.shape[0]}",
        )
    return vector, thumb
