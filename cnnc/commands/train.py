"""`cnnc train`: train a network on a data set; write its weights, its records and the program."""

from __future__ import annotations

import json
from pathlib import Path

from cnnc.commands import common
from cnnc.search import choices

HELP = "train a network on a data set (weights, checkpoints, metrics, curves)"
DESCRIPTION = """\
Train a network on real data, from scratch or from a checkpoint (--weights), optionally with parts
frozen (--freeze LABEL: those parameters are not trained, and their BatchNorm layers keep their
statistics). SGD (Nesterov) or AdamW, linear warm-up then a cosine schedule; AMP and channels_last
on CUDA. Data sets: digits (scikit-learn's 8×8 digits), folder:DIR (one sub-folder per class;
ImageNet normalisation and random crops and flips by default), cifar10:DIR (the python batches),
npz:FILE (arrays x [N, C, H, W] or [N, H, W, C] and y). Images are resized to the network's input.

Writes into --out: checkpoint.pt after every epoch (--resume goes on from it), metrics.csv and
curves.png, and at the end model.pt (the weights) and network.cnn with run.json (the program, the
arguments it was trained with, the input size, the preprocessing — resize, mean, std — and the class
names). The run folder is then the context of the other commands: `cnnc compile OUT -o model.onnx`,
`cnnc features OUT --at LABEL --data …` and `cnnc.load(OUT)` use exactly what training used.

examples:
  cnnc train my_net.cnn --data digits --epochs 5 --out runs/digits
  cnnc train pets.cnn --data folder:~/pets --weights resnet18.pth --weights-partial \\
             --freeze conv1 --freeze bn1 --freeze layer1 --freeze layer2 --freeze layer3 --epochs 3 --out runs/pets
"""


def configure(p) -> None:
    common.add_program_args(p)
    p.add_argument("--data", required=True, metavar="SPEC", help=choices.data_specs())
    p.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where the run's files go"
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 0.05 for sgd, 1e-3 for adamw)",
    )
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--warmup", type=float, default=0.0, metavar="EPOCHS", help="epochs of linear warm-up"
    )
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument(
        "--augment",
        choices=("auto", "on", "off"),
        default="auto",
        help=f"random crops and flips (auto: on for {choices.data_kinds_with('augment')})",
    )
    p.add_argument(  # the choices of `training.data.NORMALIZATIONS`, spelt out: the parser stays light
        "--normalize",
        choices=("auto", "data", "imagenet"),
        default="auto",
        help="per-channel statistics of the training set, or ImageNet's (auto: imagenet for "
        f"{choices.data_kinds_with('imagenet')})",
    )
    p.add_argument(
        "--weights",
        metavar="[LABEL=]PATH",
        help="start from a checkpoint (a state_dict in .pt/.pth or "
        ".safetensors); LABEL=PATH loads it into the part with that label (`body=resnet50.pth`)",
    )
    p.add_argument(
        "--weights-partial",
        action="store_true",
        help="with --weights: load what matches, keep the rest new",
    )
    p.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="LABEL",
        help="do not train the parameters under this label (repeatable)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's own choice)",
    )
    p.add_argument(
        "--seed", type=common.seed, default=0, help="weights, split and shuffles (0 … 2³² − 1)"
    )
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.pt")
    common.add_color_arg(p)


def run(args) -> int:
    print_result(train(args))
    return common.OK


class Trained:
    """What a training run leaves: the run folder and its files, the trained model, the metrics
    (one dict per epoch: `epoch`, `train_loss`, `train_acc`, `val_loss`, `val_acc`, …) and the
    command that rebuilds the model from the folder."""

    def __init__(self, folder: Path, model, metrics: list[dict], files: list[Path], rebuild: str):
        self.folder, self.model, self.metrics, self.files, self.rebuild = (
            folder,
            model,
            metrics,
            files,
            rebuild,
        )

    @property
    def accuracy(self) -> float:
        """The validation accuracy after the last epoch (0 … 1)."""
        return self.metrics[-1]["val_acc"]

    def __repr__(self) -> str:
        return f"<Trained {self.folder}: validation accuracy {self.accuracy:.4f} after {len(self.metrics)} epochs>"


def print_result(result: Trained) -> None:
    """The run's results, on stdout: the accuracy, the files written, and how to rebuild the model."""
    last = result.metrics[-1]
    print(f"validation accuracy {100 * last['val_acc']:.2f} % after {last['epoch']} epochs")
    print(f"wrote {', '.join(map(str, result.files))}")
    print(f"rebuild: {result.rebuild}")


def train(args) -> Trained:
    """`cnnc train`'s work on its parsed arguments (`cnnc.runs.train` builds them from keywords)."""
    import torch

    from cnnc.commands.files import make_folder, writing
    from cnnc.compiler.lower.fx import to_graph_module
    from cnnc.dsl.diagnostics import printable
    from cnnc.training.train import TrainOptions, freeze, train_run

    check_numbers(args)
    graph = common.graph_from_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = to_graph_module(graph, seed=args.seed)
    if args.weights:
        from cnnc.commands.compile import load_checkpoint

        load_checkpoint(model, args)
    freeze(model, args.freeze)  # on top of the program's own `freeze`
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    data = load_data(args, graph)
    check_classes(graph, data)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(
        f"{graph.network}: {total:,} params, {trainable:,} trainable, {total - trainable:,} frozen "
        f"({len(frozen)} tensors); {printable(data.name)}: {len(data.train_x):,} train / {len(data.val_x):,} validation "
        f"images of {list(data.input_shape)}, {data.num_classes} classes",
        flush=True,
    )
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3),
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        label_smoothing=args.label_smoothing,
        augment=augmenting(args),
        device=args.device,
        seed=args.seed,
    )
    out = make_folder(args.out, "--out")
    with writing(out, "--out"):
        rows = train_run(model, data, options, out, resume=args.resume)
        program = save_program(args, graph, out, data)
    files = [
        out / "model.pt",
        out / "checkpoint.pt",
        out / "metrics.csv",
        out / "curves.png",
        program,
    ]
    rebuild = f"cnnc compile {out} -o model.pt (the run folder names the program, its arguments, input and weights)"
    return Trained(out, model, rows, files, rebuild)


def check_numbers(args) -> None:
    """The numeric options, before the program and the data are loaded: the rules of
    `cnnc search`'s same options, said as usage errors."""
    common.at_least("--epochs", args.epochs, 1)
    common.batch_size(args.batch_size)
    if args.threads is not None:
        common.threads(args.threads)
    if args.lr is not None:
        common.positive("--lr", args.lr)
    common.not_negative("--weight-decay", args.weight_decay)
    common.below_one("--label-smoothing", args.label_smoothing)
    common.not_negative("--warmup", args.warmup)
    if args.warmup >= args.epochs:  # the schedule would never reach its peak
        raise common.UsageError(
            f"--warmup must be below --epochs ({args.epochs}), but got "
            f"{common.shown_number(args.warmup)}"
        )


def augmenting(args) -> bool:
    if args.augment != "auto":
        return args.augment == "on"
    kind = choices.data_kind(args.data)
    return kind is not None and kind.augment


def load_data(args, graph):
    from cnnc.training.data import load_dataset, normalised

    check_images(graph, args.data, None)  # one image input, before its size is read
    _, h, w = graph.input_type.shape
    data = load_dataset(args.data, size=(h, w), seed=args.seed)
    check_images(graph, args.data, data.input_shape)
    return normalised(data, args.data, args.normalize)


def check_images(graph, spec: str, shape) -> None:
    """The data set's images must be what the network takes (after resizing to its side)."""
    from cnnc.dsl.diagnostics import CnncError, error

    if len(graph.inputs) != 1 or graph.input_type.rank != 3:
        names = ", ".join(f"`{graph.input_name(i)}`" for i in graph.inputs)
        raise CnncError(
            error(
                "E0603",
                f"`{graph.network}` takes {len(graph.inputs)} inputs ({names}); a data set "
                "gives images, one per sample",
                None,
                helps=("train or embed a network with one `input [C, H, W]`",),
            )
        )
    c, h, w = graph.input_type.shape
    if shape is not None and tuple(shape) != (c, h, w):
        raise CnncError(
            error(
                "E0603",
                f"`{graph.network}` takes {[c, h, w]}, but the images of `{spec}` are "
                f"{list(shape)}",
                None,
                helps=(
                    f"pass --input {shape[0]},{h},{w} (a network infers its "
                    "first layer's channels from its input)",
                ),
            )
        )


def check_classes(graph, data) -> None:
    from cnnc.dsl.diagnostics import CnncError, error

    out = graph.output_type.shape
    if graph.output_kind != "tensor":
        raise CnncError(
            error(
                "E0603",
                f"`{graph.network}` returns several tensors; training needs one, the "
                f"logits [{data.num_classes}]",
                None,
                helps=("train a network that returns its classifier's output",),
            )
        )
    if len(out) != 1 or out[0] != data.num_classes:
        raise CnncError(
            error(
                "E0603",
                f"`{graph.network}` outputs {list(out)}, but `{data.name}` has "
                f"{data.num_classes} classes: training needs logits [{data.num_classes}]",
                None,
                helps=(
                    f"give the network a head of {data.num_classes} classes, e.g. "
                    f"--arg classes={data.num_classes}",
                ),
            )
        )


def save_program(args, graph, out: Path, data) -> Path:
    """Copy the program (and the imports of its own folder) and record how it was instantiated and
    what its images went through (`training.runs`: input size, preprocessing, class names)."""
    from cnnc.api import load_program
    from cnnc.dsl import safefs
    from cnnc.training.runs import record

    program = load_program(args.file)
    main = Path(program.main)
    root = main.parent
    for key in program.modules:
        path = Path(key)
        if path != main and path.is_relative_to(root):
            relative = path.relative_to(root)
            safefs.write_bytes(
                Path(safefs.folder_inside(out, relative.parent)) / relative.name, path.read_bytes()
            )
    safefs.write_bytes(out / "network.cnn", main.read_bytes())
    # every image was resized to the network's input as it loaded (`load_dataset(size=(h, w))`)
    safefs.write_text(
        out / "run.json", json.dumps(record(graph, data, args, resized=True), indent=2) + "\n"
    )
    return out / "network.cnn"
