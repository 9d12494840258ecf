"""`cnnc features`: one embedding per image, taken at a label of a (trained) network."""

from __future__ import annotations

import sys
from pathlib import Path

from cnnc.commands import common

HELP = "write one embedding per image (the activations at a label) and print the kNN accuracy"
DESCRIPTION = """\
Run every image of a data set through a network, take the activations at --at LABEL (the last
tensor made inside that label; a feature map is global-average-pooled to a vector) and write them
to an .npz file with the labels, the split (train / held out), the image paths and thumbnails.
Prints the feature quality figure: the accuracy of a 5-nearest-neighbour vote (L2) of the training
images for each held-out image. `cnnc neighbors` reads the file.

examples:
  cnnc features runs/digits/network.cnn --weights runs/digits/model.pt --at layer4 --data digits --out feats.npz
  cnnc features resnet18 --weights resnet18.pth --at avgpool --data folder:photos --out photos.npz
"""


def configure(p) -> None:
    common.add_program_args(p)
    p.add_argument("--at", required=True, metavar="LABEL", help="the label whose activations are the features")
    p.add_argument("--data", required=True, metavar="SPEC", help="digits, folder:DIR, cifar10:DIR or npz:FILE")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.npz")
    p.add_argument("--weights", metavar="PATH", help="a checkpoint (state_dict in .pt/.pth or .safetensors)")
    p.add_argument("--weights-partial", action="store_true", help="with --weights: load what matches")
    p.add_argument("--seed", type=common.seed, default=0, help="the split's seed (as `cnnc train` used)")
    p.add_argument("-k", type=int, default=5, help="neighbours that vote in the kNN accuracy (default 5)")
    common.add_color_arg(p)


def run(args) -> int:
    import torch

    from cnnc.commands.files import writing
    from cnnc.commands.train import check_images
    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.search.features import extract, knn_accuracy, load_images, save

    graph = common.graph_from_args(args)
    model = to_graph_module(graph, seed=0)
    if args.weights:
        from cnnc.commands.compile import load_checkpoint

        load_checkpoint(model, args)
    check_images(graph, args.data, None)  # one image input, before its size is read
    c, h, w = graph.input_type.shape
    images = load_images(args.data, size=(h, w), seed=args.seed)
    check_images(graph, args.data, images.x.shape[1:])
    torch.manual_seed(args.seed)
    features = extract(model, args.at, images.x)  # [N, D]
    accuracy = knn_accuracy(features, images.y.numpy(), images.split, k=args.k)
    meta = {"file": str(args.file), "network": graph.network, "args": list(args.arg),
            "input": [c, h, w], "weights": args.weights, "at": args.at, "mean": images.mean, "std": images.std,
            "data": args.data}
    path = Path(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz")
    with writing(path, "--out"):
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path, features, images, meta)
    held = int(images.split.sum())
    print(f"{len(features):,} images → {features.shape[1]}-dimensional features at `{args.at}`; wrote {path}",
          file=sys.stderr)
    print(f"kNN accuracy ({args.k} nearest training images, L2) on {held:,} held-out images: {100 * accuracy:.2f} %")
    return common.OK
