"""The fuzzer's worker: runs one input through check → summary → load → forward (→ .py artefact)
and says how it ended. It reads one JSON request a line on stdin and answers one JSON line on stdout.

It runs in its own process so that the driver (`fuzz/run.py`) can kill it on a hang or when its memory
grows past the budget. While an input runs, an audit hook watches for what a `.cnn` file must never
cause: files opened outside the sandbox and the interpreter's own tree, processes started, sockets.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

RUN_MACS = (
    300_000_000  # forward only networks this cheap (batch 1): the fuzzer's time goes to breadth
)
RUN_PARAMS = 20_000_000
RUN_LAYERS = 150  # building a module costs ~5 ms a layer: the zoo's giants are checked, not run
RUN_ACTIVATIONS = 20_000_000  # elements at batch 1 (80 MB): a legitimately large network is not run
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
LEAKS = ("root:x:0:0", "root:*:0:0", "PATH=/", "HOME=/")
FORBIDDEN_EVENTS = (
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "socket.connect",
    "socket.bind",
    "ctypes.dlopen",
)
FILE_EVENTS = (
    "open",
    "os.remove",
    "os.unlink",
    "os.rename",
    "shutil.rmtree",
)  # allowed inside the sandbox


SYSTEM_FACTS = ("/proc/", "/sys/")  # read, never written: free memory, a worker's process start


def _reads_system(event: str, real: str, args) -> bool:
    """A read-only open of what the kernel reports (the memory budget, a worker's liveness)."""
    if event != "open" or not real.startswith(SYSTEM_FACTS):
        return False
    mode, flags = (list(args[1:3]) + [None, None])[:2]
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    return isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) == 0


class Watch:
    """An audit hook that records forbidden events while `active`; the driver classifies them."""

    def __init__(self, allowed_roots: tuple[str, ...]):
        self.allowed = allowed_roots
        self.active = False
        self.events: list[str] = []
        sys.addaudithook(self.hook)

    def hook(self, event: str, args) -> None:
        if not self.active:
            return
        if event in FILE_EVENTS:
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)):
                path = os.fsdecode(path)
                real = os.path.realpath(path) if path else path
                if not real.startswith(self.allowed) and not _reads_system(event, real, args):
                    self.events.append(f"{event} {path!r}")
        elif event.startswith(FORBIDDEN_EVENTS):
            self.events.append(event)


def quiet_cli(argv: list[str]) -> tuple[int, str, str]:
    """`cnnc ARGV` in this process: (exit code, stdout, stderr); an escaping exception is rc -1."""
    from cnnc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 — the point is to see every escape
            return -1, out.getvalue(), f"{type(exc).__name__}: {exc}"
    return rc, out.getvalue(), err.getvalue()


def stderr_problem(err: str) -> str:
    if RAW_CONTROL.search(err):
        return "raw control character in diagnostics"
    if any(leak in err for leak in LEAKS):
        return "diagnostics show a file's contents"
    if any(len(line) > 1000 for line in err.splitlines()):
        return "diagnostic line over 1000 characters"
    return ""


def run_case(path: Path, deep: bool) -> tuple[str, str]:
    """(outcome, detail): outcome `bug:*` is a failure of cnnc; anything else is an expected ending."""
    rc, out, err = quiet_cli(["check", str(path)])
    problem = stderr_problem(err)
    if problem:
        return "bug:diagnostics", problem
    if rc == -1 or rc == 70:
        return "bug:internal", _first(err)
    if rc != 0:
        codes = re.findall(r"error\[(\w+)\]", err)
        return ("rejected", codes[0] if codes else f"exit {rc}")
    if (
        ": a search space with " in out
    ):  # check lists a space's decisions; summary and load refuse it
        return "accepted", "a search space"
    rc, out, err = quiet_cli(["summary", str(path), "--format", "json"])
    if rc == 2:
        return "accepted", "no single concrete network (summary needs --network)"
    if rc != 0:
        return "bug:summary", f"check accepted, summary exit {rc}: {_first(err)}"
    try:
        summary = json.loads(out)
    except ValueError:
        return "bug:summary", "summary --format json printed no JSON"
    large = (
        len(summary.get("layers", ())) > RUN_LAYERS
        or summary.get("activations", 0) > RUN_ACTIVATIONS
    )
    if large or summary.get("macs", 0) > RUN_MACS or summary.get("params", 0) > RUN_PARAMS:
        return "accepted", "static only (large)"
    return run_forward(path, summary, deep)


def run_forward(path: Path, summary: dict, deep: bool) -> tuple[str, str]:
    import torch

    import cnnc

    try:
        model = cnnc.load(path, seed=0).eval()
        x = tuple(torch.randn(1, *i["shape"]) for i in summary["inputs"])  # one per input, in order
        with torch.inference_mode():
            y = model(*x)
    except Exception as exc:  # noqa: BLE001
        return (
            "bug:run",
            f"check accepted, load/forward failed: {type(exc).__name__}: {_first(str(exc))}",
        )
    got = [list(t.shape[1:]) for t in outputs(y)]
    want = [o["shape"] for o in summary["outputs"]]
    if got != want:
        return "bug:run", f"outputs {got} but summary said {want}"
    if deep:
        problem = compare_source(model, x, y)
        if problem:
            return "bug:source", problem
    return "ran", ""


def outputs(y) -> list:
    """The tensors a forward returned: one, a tuple of them, or a dict (in its order)."""
    if isinstance(y, dict):
        return list(y.values())
    return list(y) if isinstance(y, tuple) else [y]


def compare_source(model, x, y) -> str:
    """The standalone .py artefact gives the same output for the same seed."""
    import torch

    namespace: dict = {"__name__": "cnnc_fuzz_generated"}
    try:
        exec(compile(model.cnnc_source(seed=0), "<generated>", "exec"), namespace)  # noqa: S102 — our own emitter's output is what is tested
        from cnnc.compiler.lower.fx import class_name

        cls = namespace[
            class_name(model.cnnc_graph.network)
        ]  # helpers (Chunk, Block, …) are classes too
        with torch.inference_mode():
            z = cls(seed=0).eval()(*x)
    except Exception as exc:  # noqa: BLE001
        return f"standalone source failed: {type(exc).__name__}: {_first(str(exc))}"
    if (
        type(z) is not type(y)
        or (isinstance(y, dict) and list(z) != list(y))
        or len(outputs(z)) != len(outputs(y))
    ):
        return "standalone source returns another structure"
    for a, b in zip(outputs(z), outputs(y)):
        if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            return "standalone source gives another output"
    return ""


def _first(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def serve(sandbox: Path) -> None:
    import data_mutants
    import torch

    import cnnc.api  # imported before the watch starts: these opens are ours

    data_mutants.prepare(
        sandbox
    )  # data cases (`fuzz/data_mutants.py`): their libraries' lazy opens, now
    torch.set_num_threads(1)
    roots = tuple(
        {
            str(Path(p).resolve())
            for p in (sandbox, sys.prefix, sys.base_prefix, Path(cnnc.api.__file__).parents[1])
        }
        | {"/dev/null"}
    )
    watch = Watch(roots)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("kind") == "study":
            print(
                json.dumps({"id": request["id"], **study_case(sandbox, request, watch)}), flush=True
            )
            continue
        case = features_case(request, sandbox) if request.get("kind") == "features" else None
        if case is None:
            path = sandbox / request["name"]
            path.write_text(request["text"], encoding="utf-8", errors="surrogatepass")
        watch.events.clear()
        watch.active = True
        try:
            if case:
                outcome, detail = case()
            elif request.get("kind") == "data":
                outcome, detail = data_mutants.run_case(
                    sandbox, request["text"], quiet_cli, stderr_problem
                )
            else:
                outcome, detail = run_case(path, request.get("deep", False))
        finally:
            watch.active = False
        if watch.events:
            outcome, detail = "bug:escape", "; ".join(watch.events[:3])
        if (sandbox / "cnnc-fuzz-canary").exists():
            outcome, detail = "bug:escape", "a payload ran: the canary file exists"
        print(json.dumps({"id": request["id"], "outcome": outcome, "detail": detail}), flush=True)


WARM: list = []  # this process has run a valid features file once


def features_folder(sandbox: Path) -> Path:
    """Where features-file mutants go, with the program and image the valid file names; made at the
    first features request (the watch is off then)."""
    import features_mutants

    folder = sandbox / "features"
    if WARM:
        return folder
    folder.mkdir(exist_ok=True)
    path = folder / "feats.npz"
    path.write_bytes(features_mutants.seed_file(folder))
    # once before the watch starts: matplotlib finds its fonts (a subprocess, system font files)
    features_mutants.run_case(path, quiet_cli, stderr_problem)
    WARM.append(True)
    return folder


def features_case(request: dict, sandbox: Path):
    """A features-file mutant (`fuzz/features_mutants.py`) driven through `cnnc neighbors`."""
    import base64

    import features_mutants

    path = features_folder(sandbox) / "feats.npz"
    path.write_bytes(base64.b64decode(request["data"]))

    def case():
        outcome, detail = features_mutants.run_case(path, quiet_cli, stderr_problem)
        return outcome, f"features {detail}"

    return case


def study_case(sandbox: Path, request: dict, watch: Watch) -> dict:
    """A mutated study or run folder (`fuzz/study_mutants.py`) through `search-report` or `train
    --resume`; the seed folders are made before the watch starts."""
    import study_mutants

    os.environ.setdefault("MPLCONFIGDIR", str(sandbox / "cache"))
    recipe, argv, victims = study_mutants.prepare(sandbox, request["seed"])
    watch.events.clear()
    watch.active = True
    try:
        rc, out, err = quiet_cli(argv)
    finally:
        watch.active = False
    outcome, detail = study_mutants.classify(rc, out, err, victims)
    if watch.events:
        outcome, detail = "bug:escape", "; ".join(watch.events[:3])
    return {
        "outcome": outcome,
        "detail": f"{detail} [{'; '.join(recipe)}]" if outcome.startswith("bug") else detail,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    serve(Path(sys.argv[1]))
