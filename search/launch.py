"""`cnnc search --workers K`: K worker processes on this machine sharing one study.

Input: `Settings` (with `workers` = K). Output: the workers' exit statuses, once all have stopped.
Each worker is `cnnc search` in a process of its own, given the parent's settings (as JSON, with its
index) and running `worker.Worker`'s loop on the same storage; the parent writes the results after.

Contracts:
- with `--device cuda` (or `auto` on a machine with GPUs) and several GPUs visible, worker i sees
  only GPU i mod #GPUs (`CUDA_VISIBLE_DEVICES`); on the CPU each worker uses `--threads` threads.
- the workers run in a process group of their own, so a Ctrl-C on the terminal reaches the parent
  alone, which passes it on once: each worker records its running trial as failed and stops. A
  second Ctrl-C is passed on too: the workers exit at once.
- a worker that dies (SIGKILL, out of memory) leaves the others running; its trial is found stale
  and run again by them (`storage.fail_stale`).
- the workers outlive no parent: each holds the reading end of a pipe whose only writing end the
  parent holds (`PARENT_FD`, the descriptor's number). When the parent ends, however it ends (a
  SIGKILL too), the pipe reads end-of-file and `watch_parent` sends the worker SIGTERM: it records
  its running trial as interrupted, queues it again and stops. A pipe rather than Linux's
  `PR_SET_PDEATHSIG`: it works on every POSIX system and cannot miss a parent that died before the
  worker started watching. The parent writes best.cnn only when all have stopped; after a killed
  parent, running the command again (or `cnnc search-report`) writes it from the finished trials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CHILD = "import sys; from cnnc.cli import main; sys.exit(main())"
PARENT_FD = "CNNC_PARENT_FD"  # environment: the worker's end of the pipe to its parent


def settings_json(settings, index: int) -> str:
    values = dataclasses.asdict(settings)
    values["out"] = str(values["out"])
    values["worker"] = index
    return json.dumps(values)


def settings_from_json(text: str, cls):
    values = json.loads(text)
    values["out"] = Path(values["out"])
    for key, value in values.items():
        if isinstance(value, list):  # JSON has no tuples; Settings' sequences are tuples
            values[key] = tuple(value)
    return cls(**values)


def gpu_pins(device: str, workers: int) -> list[str | None]:
    """The `CUDA_VISIBLE_DEVICES` of each worker (None: leave it as it is)."""
    if device == "cpu":
        return [None] * workers
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g for g in visible.split(",") if g.strip()]
    else:
        try:
            import torch

            gpus = [str(i) for i in range(torch.cuda.device_count())]
        except ImportError:  # pragma: no cover - torch is a dependency
            gpus = []
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]


def run_workers(settings, say: Callable[[str], None]) -> list[int]:
    """Start the workers, pass signals on, wait for all; their exit statuses (negative: a signal)."""
    watched, alive = os.pipe()  # the parent keeps `alive` open until it ends (module docstring)
    try:
        try:
            procs = start_workers(settings, watched, say)
        finally:
            os.close(watched)
        return wait_for(procs, say)
    finally:
        os.close(alive)


def start_workers(settings, watched: int, say: Callable[[str], None]) -> list[subprocess.Popen]:
    procs = []
    for i, gpu in enumerate(gpu_pins(settings.device, settings.workers)):
        env = dict(os.environ, **{PARENT_FD: str(watched)})
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        command = [
            sys.executable,
            "-c",
            CHILD,
            "search",
            str(settings.file),
            "--worker-settings",
            settings_json(settings, i),
        ]
        procs.append(
            subprocess.Popen(command, env=env, start_new_session=True, pass_fds=(watched,))
        )
        say(f"worker {i} started (pid {procs[-1].pid}{f', GPU {gpu}' if gpu is not None else ''})")
    return procs


def watch_parent() -> None:
    """In a worker started by `run_workers`: SIGTERM to itself once the parent has ended."""
    fd = os.environ.pop(PARENT_FD, None)
    if fd is None or not fd.isdigit():
        return

    def watch():
        try:
            while os.read(int(fd), 1):  # b"" (end-of-file) once no process holds the writing end
                pass
        except OSError:
            return  # not a pipe we were given: nothing to watch
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="cnnc-parent-watch", daemon=True).start()


def wait_for(procs, say: Callable[[str], None]) -> list[int]:
    """Pass SIGINT and SIGTERM on to the workers and wait for all of them."""

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signum)

    restore = {}
    if threading.current_thread() is threading.main_thread():
        restore = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes: dict[int, int] = {}
        while len(codes) < len(
            procs
        ):  # reap each as it ends: a zombie would look alive to the others
            for i, p in enumerate(procs):
                if i not in codes and p.poll() is not None:
                    codes[i] = p.returncode
                    if p.returncode < 0:
                        name = signal.Signals(-p.returncode).name
                        say(
                            f"worker {i} (pid {p.pid}) was killed by {name}: the others run its trial again"
                        )
            time.sleep(0.1)
        return [codes[i] for i in range(len(procs))]
    finally:
        for s, old in restore.items():
            signal.signal(s, old)
