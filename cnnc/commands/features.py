"""`cnnc features`: one embedding per image, taken at a label of a (trained) network."""

from __future__ import annotations

import sys
from pathlib import Path

from cnnc.commands import common
from cnnc.search import choices

HELP = "write one embedding per image (the activations at a label) and print the kNN accuracy"
DESCRIPTION = """\
Run every image of a data set through a network, take the activations at --at LABEL (the last
tensor made inside that label; a feature map is global-average-pooled to a vector) and write them
to the .npz file --out names (exactly that path) with the labels, the split (train / held out), the
image paths and thumbnails. Prints the feature quality figure: the accuracy of a 5-nearest-neighbour
vote (L2) of the training images for each held-out image. `cnnc neighbors` reads the file.

Given a run folder (`cnnc train --out RUN`), it takes the run's program, arguments, input size,
weights, preprocessing (resize, mean, std), split seed and class names; given a program, the data
set's own statistics standardise the images. One line on stderr says which.

examples:
  cnnc features runs/digits --at layer4 --data digits --out feats.npz
  cnnc features resnet18 --weights resnet18.pth --at avgpool --data folder:photos --out photos.npz
"""


def configure(p) -> None:
    common.add_program_args(p, run_folder=True)
    p.add_argument(
        "--at", required=True, metavar="LABEL", help="the label whose activations are the features"
    )
    p.add_argument(
        "--data", metavar="SPEC", help=f"{choices.data_specs()} (default: the run's own data set)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE.npz")
    p.add_argument(
        "--weights",
        metavar="[LABEL=]PATH",
        help="a checkpoint (state_dict in .pt/.pth or "
        ".safetensors); LABEL=PATH loads it into the part with that label",
    )
    p.add_argument(
        "--weights-partial", action="store_true", help="with --weights: load what matches"
    )
    p.add_argument(
        "--seed",
        type=common.seed,
        default=None,
        help="the split's seed (default: the run's, else 0; as `cnnc train` used)",
    )
    p.add_argument(
        "-k", type=int, default=5, help="neighbours that vote in the kNN accuracy (default 5)"
    )
    common.add_color_arg(p)


def run(args) -> int:
    import torch

    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.training.features import extract, knn_accuracy

    if args.k < 1:
        raise common.UsageError(f"-k must be at least 1, but got {args.k}")
    path = output(args.out)
    run = common.use_run(args)
    if args.data is None:
        if run is None or not run.data:
            raise common.UsageError(
                "--data is required: which images to embed (a run folder's own data set is "
                "the default)"
            )
        args.data = run.data
    graph = common.graph_from_args(args)
    model = to_graph_module(graph, seed=0)
    if args.weights:
        from cnnc.commands.compile import load_checkpoint

        load_checkpoint(model, args)
    images, seed = images_for(args, graph, run)
    torch.manual_seed(seed)
    features = extract(model, args.at, images.x)  # [N, D]
    accuracy = knn_accuracy(features, images.y.numpy(), images.split, k=args.k)
    write(path, features, images, metadata(args, graph, images, run, path))
    held = int(images.split.sum())
    print(
        f"{len(features):,} images → {features.shape[1]}-dimensional features at `{args.at}`; wrote {path}",
        file=sys.stderr,
    )
    print(
        f"kNN accuracy ({args.k} nearest training images, L2) on {held:,} held-out images: {100 * accuracy:.2f} %"
    )
    return common.OK


def output(out: Path) -> Path:
    """--out, exactly as given: a folder or a non-regular file (a FIFO, `/dev/null`) is refused before
    the work, since the file is written beside its target and moved into place."""
    from cnnc.commands.files import check_output
    from cnnc.dsl import safefs

    path = check_output(out, "--out")
    what = safefs.kind(path, follow=True)
    if what not in ("file", "missing"):
        raise common.UserError(
            f"`{path}` is a {what}: --out needs a regular file, written whole",
            "name a file, e.g. `--out feats.npz`",
        )
    return path


def images_for(args, graph, run):
    """The data set, resized and standardised as the run trained (or with its own statistics)."""
    from cnnc.commands.train import check_images
    from cnnc.training.features import load_images

    check_images(graph, args.data, None)  # one image input, before its size is read
    _, h, w = graph.input_type.shape
    prep = run.preprocessing if run is not None else None
    resize = prep is None or prep.resize is not None
    seed = args.seed if args.seed is not None else (run.seed if run is not None else 0)
    stats = (
        {"mean": prep.mean, "std": prep.std} if prep is not None and prep.mean is not None else {}
    )
    images = load_images(args.data, size=(h, w) if resize else None, seed=seed, **stats)
    check_images(graph, args.data, images.x.shape[1:])
    if not stats:
        from cnnc.training.runs import numbers as _numbers

        print(
            f"standardised with the data set's own statistics: mean {_numbers(images.mean)}, "
            f"std {_numbers(images.std)}",
            file=sys.stderr,
        )
    return images, seed


def metadata(args, graph, images, run, path: Path) -> dict:
    from cnnc.training.features_file import portable
    from cnnc.training.runs import class_names

    base = path.parent
    # the labels are the data set's: the run's class names where it is the run's own data set
    same = run is not None and run.classes and run.data.strip() == args.data.strip()
    classes = list(run.classes) if same else list(class_names(args.data, int(images.y.max()) + 1))
    return {
        "file": portable(args.file, base),
        "network": graph.network,
        "args": list(args.arg),
        "input": list(graph.input_type.shape),
        "weights": portable(args.weights, base),
        "at": args.at,
        "mean": list(images.mean),
        "std": list(images.std),
        "data": args.data,
        "classes": classes,
        "run": portable(run.folder, base) if run is not None else None,
    }


def write(path: Path, features, images, meta) -> None:
    from cnnc.commands.files import writing
    from cnnc.training.features import save

    with writing(path, "--out"):
        path.parent.mkdir(parents=True, exist_ok=True)
        if save(path, features, images, meta).replaced_link:
            print(
                f"note: `{path}` was a link: replaced by the file, nothing written through it",
                file=sys.stderr,
            )
