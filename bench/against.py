"""This checkout against another, command by command: median wall time of each, side by side.

    .venv/bin/python bench/against.py BASE_TREE [REPEATS]

BASE_TREE is another checkout with its own `.venv` (e.g. `git worktree add ../base REV`, a copy of
`.venv` and `pip install -e .` there). The two run alternately, so load on the machine falls on
both; a ratio head/base above 1 is a slowdown.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

trees = {"base": sys.argv[1], "head": str(Path(__file__).resolve().parents[1])}
cmds = [
    ["check", "zoo/resnet152.cnn"],
    ["summary", "zoo/resnet152.cnn", "--format", "json"],
    ["summary", "zoo/inception_v4.cnn", "--depth", "0"],
    ["compile", "zoo/resnet50.cnn", "-o", "/tmp/cnnc-against-out.py"],
    ["space", "zoo/spaces/resnet_space.cnn"],
]
py = {
    "load resnet50 + forward": "import cnnc, torch; m = cnnc.load('zoo/resnet50.cnn'); m.eval(); torch.set_num_threads(1); x=torch.randn(1,3,224,224)\nwith torch.no_grad(): m(x)"
}


def run(tree, argv):
    t = time.perf_counter()
    subprocess.run(argv, cwd=tree, capture_output=True, check=True)
    return time.perf_counter() - t


rows = []
for c in cmds + list(py.items()):
    times = {k: [] for k in trees}
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
        for k, tree in trees.items():
            if isinstance(c, tuple):
                argv = [f"{tree}/.venv/bin/python", "-c", c[1]]
            else:
                argv = [f"{tree}/.venv/bin/cnnc", *c]
            times[k].append(run(tree, argv))
    name = c[0] if isinstance(c, tuple) else "cnnc " + " ".join(c[:2])
    b, h = statistics.median(times["base"]), statistics.median(times["head"])
    rows.append((name, b, h, h / b))
    print(f"{name:45s} base {b:6.2f} s  head {h:6.2f} s  head/base {h / b:5.2f}", flush=True)
