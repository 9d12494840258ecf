#!/usr/bin/env python3
"""Dump reference facts (params, MACs, output shape, state_dict layout) for
torchvision / timm models into tests/reference/<model>.json.

Run with an interpreter that has torch, torchvision and timm installed, e.g.

    /work/refenv/bin/python tests/reference/dump_reference.py [--modules-dir DIR] [MODEL ...]

Models are built with random init (no weights are downloaded).  MACs are the
total of torch.utils.flop_counter.FlopCounterMode on a batch-1 eval forward,
divided by 2; that counter only sees some ops (conv, mm/addmm/bmm, ...), so
e.g. BatchNorm, activations and pooling contribute nothing.
"""

import argparse
import json
import os
import sys

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))

# (model, source, input side)
TV = "tv"
TIMM = "timm"
MODELS = [
    ("alexnet", TV, 224),
    ("vgg11", TV, 224),
    ("vgg11_bn", TV, 224),
    ("vgg13", TV, 224),
    ("vgg13_bn", TV, 224),
    ("vgg16", TV, 224),
    ("vgg16_bn", TV, 224),
    ("vgg19", TV, 224),
    ("vgg19_bn", TV, 224),
    ("googlenet", TV, 224),
    ("inception_v3", TV, 299),
    ("resnet18", TV, 224),
    ("resnet34", TV, 224),
    ("resnet50", TV, 224),
    ("resnet101", TV, 224),
    ("resnet152", TV, 224),
    ("resnext50_32x4d", TV, 224),
    ("resnext101_32x8d", TV, 224),
    ("wide_resnet50_2", TV, 224),
    ("mobilenet_v2", TV, 224),
    ("mobilenet_v3_small", TV, 224),
    ("mobilenet_v3_large", TV, 224),
    ("squeezenet1_0", TV, 224),
    ("squeezenet1_1", TV, 224),
    ("densenet121", TV, 224),
    ("shufflenet_v2_x1_0", TV, 224),
    ("mnasnet1_0", TV, 224),
    ("efficientnet_b0", TV, 224),
    ("regnet_y_400mf", TV, 224),
    ("convnext_tiny", TV, 224),
    ("inception_v4", TIMM, 299),
    ("inception_resnet_v2", TIMM, 299),
    ("seresnet50", TIMM, 224),
    ("senet154", TIMM, 224),
    ("mobilenetv1_100", TIMM, 224),
]

# Extra constructor kwargs for torchvision models.
TV_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}

# Our name -> candidate timm names (first one that exists is used).
# timm has both `legacy_senet154` (the original Cadene SENet port, whose
# param count matches the published 115.09M) and `senet154` (a re-implementation
# on timm's ResNet class with a different stem / state_dict layout).
TIMM_NAMES = {
    "senet154": ["legacy_senet154", "senet154"],
}


def build(name, src):
    """Return (model, source string, constructor string)."""
    if src == TV:
        kw = dict(TV_KWARGS.get(name, {}))
        fn = getattr(torchvision.models, name)
        try:
            model = fn(weights=None, **kw)
        except TypeError:  # kwarg not accepted: fall back to defaults
            kw = {}
            model = fn(weights=None)
        args = ", ".join(["weights=None"] + [f"{k}={v!r}" for k, v in kw.items()])
        ver = torchvision.__version__.split("+")[0]
        return model, f"torchvision {ver}", f"torchvision.models.{name}({args})"
    import timm

    avail = set(timm.list_models())
    for tname in TIMM_NAMES.get(name, [name]):
        if tname in avail:
            break
    else:
        raise KeyError(f"no timm model for {name}")
    model = timm.create_model(tname, pretrained=False)
    return model, f"timm {timm.__version__}", f"timm.create_model({tname!r}, pretrained=False)"


def measure(model, side):
    model.eval()
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(x)
    flops = counter.get_total_flops()
    macs = flops // 2 if flops % 2 == 0 else flops / 2
    if isinstance(out, (tuple, list)):  # should not happen with aux_logits=False
        out = out[0]
    return macs, list(out.shape)


def to_json(rec):
    """Compact JSON with one state_dict entry per line."""
    head = {k: v for k, v in rec.items() if k != "state_dict"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"{json.dumps(k)}: {json.dumps(v)},")
    sd = rec["state_dict"]
    lines.append('"state_dict": [')
    for i, entry in enumerate(sd):
        lines.append(json.dumps(entry, separators=(",", ":")) + ("," if i < len(sd) - 1 else ""))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def module_listing(model, src):
    txt = [str(model), ""]
    types = []
    for _, m in model.named_modules():
        t = f"{type(m).__module__}.{type(m).__qualname__}"
        if t not in types:
            types.append(t)
    txt.append("# distinct module types (first-use order)")
    txt += types
    if src == TIMM:
        txt += ["", "# named_modules: name -> type"]
        for n, m in model.named_modules():
            txt.append(f"{n or '<root>'}: {type(m).__qualname__}")
    return "\n".join(txt) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="subset of models (default: all)")
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument(
        "--modules-dir",
        default=None,
        help="also write <model>.txt with print(model) and module types here",
    )
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    wanted = set(args.models)
    unknown = wanted - {m for m, _, _ in MODELS}
    if unknown:
        ap.error(f"unknown models: {sorted(unknown)}")
    for name, src, side in MODELS:
        if wanted and name not in wanted:
            continue
        model, source, ctor = build(name, src)
        params = sum(p.numel() for p in model.parameters())
        macs, out_shape = measure(model, side)
        rec = {
            "model": name,
            "source": source,
            "ctor": ctor,
            "input": [3, side, side],
            "params": params,
            "macs": macs,
            "output": out_shape,
            "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
        }
        with open(os.path.join(args.out_dir, f"{name}.json"), "w") as f:
            f.write(to_json(rec))
        if args.modules_dir:
            os.makedirs(args.modules_dir, exist_ok=True)
            with open(os.path.join(args.modules_dir, f"{name}.txt"), "w") as f:
                f.write(module_listing(model, src))
        print(
            f"{name:22s} params={params:>11d} macs={macs:>13} out={out_shape} [{ctor}]", flush=True
        )


if __name__ == "__main__":
    sys.exit(main())
