"""`cnnc.search(...)` and `cnnc.train(...)`: the long runs, from Python.

Each turns its keywords into the command line of `cnnc search` / `cnnc train` and runs that
command's own work (`commands.search.search`, `commands.train.train`) on it, so the API and the CLI
share one set of defaults, one validation and one body: a keyword left as None takes the command's
default, and a bad value raises `ValueError` with the command's message. Both print what the
command prints (trial lines, epochs, the results) and return the results as objects. Program
errors raise `CnncError`; a folder or storage that cannot be used raises the command's `UserError`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own, without importing typing at start-up
if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from cnnc.commands.train import Trained
    from cnnc.search.driver import Result

    Path = str | os.PathLike
    Args = Mapping[str, Any] | Sequence[str] | None
    Input = Sequence[int] | Mapping[str, Sequence[int]] | None


def train(
    path: Path,
    data: str,
    out: Path,
    *,
    network: str | None = None,
    args: Args = None,
    input: Input = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    weight_decay: float | None = None,
    warmup: float | None = None,
    label_smoothing: float | None = None,
    augment: str | None = None,
    normalize: str | None = None,
    weights: Path | None = None,
    weights_partial: bool = False,
    freeze: Iterable[str] = (),
    device: str | None = None,
    threads: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    allow_import: Iterable[Path] = (),
) -> Trained:
    """Train a network on a data set (`cnnc train`); returns the run (`.folder`, `.model`, `.metrics`
    one dict per epoch, `.accuracy`, `.files`, `.rebuild`).

    `data` is `digits`, `folder:DIR`, `cifar10:DIR` or `npz:FILE`; `out` the run folder (checkpoint,
    metrics, curves, the weights and the program). The keywords are `cnnc train`'s options
    (`cnnc train --help`), e.g. `epochs=3, freeze=["conv1", "layer1"], threads=1`.
    """
    from cnnc.commands import train as command

    argv = [
        *_program_options(network, args, input, allow_import),
        "--data",
        data,
        "--out",
        out,
        *_options(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            warmup=warmup,
            label_smoothing=label_smoothing,
            augment=augment,
            normalize=normalize,
            weights=weights,
            weights_partial=weights_partial,
            freeze=freeze,
            device=device,
            threads=threads,
            seed=seed,
            resume=resume,
        ),
    ]
    return _run("train", argv, path, command.train)


def search(
    path: Path,
    *,
    network: str | None = None,
    args: Args = None,
    out: Path | None = None,
    trials: int | None = None,
    sampler: str | None = None,
    population: int | None = None,
    sample_size: int | None = None,
    seed: int | None = None,
    objective: str | Sequence[str] | None = None,
    max_params: int | None = None,
    max_macs: int | None = None,
    evaluator: str | None = None,
    proxy: str | None = None,
    data: str | None = None,
    size: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    label_smoothing: float | None = None,
    pruner: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    timeout: float | None = None,
    workers: int | None = None,
    heartbeat: int | None = None,
    retrain_top: int | None = None,
    allow_import: Iterable[Path] = (),
) -> Result:
    """Search a space of networks (`cnnc search`); returns the study's result: `.study` (optuna's),
    `.rows` (every trial), `.best` (the best trial, or the Pareto front), `.files` (trials.csv,
    best.cnn, plots), `.notes` and `.stopped` (done, timeout or interrupted: a search stopped by
    Ctrl-C returns what it finished). When no worker of `workers=K` finishes, RuntimeError.

    The keywords are `cnnc search`'s options (`cnnc search --help`), e.g. `trials=8, epochs=1,
    out="runs/tiny"`; `objective` takes `"accuracy,params"` or `["accuracy", "params"]`. Running
    again with the same `out` resumes the study.
    """
    from cnnc.commands import search as command

    if objective is not None and not isinstance(objective, str):
        objective = ",".join(objective)
    argv = [
        *_program_options(network, args, None, allow_import),
        *_options(
            out=out,
            trials=trials,
            sampler=sampler,
            population=population,
            sample_size=sample_size,
            seed=seed,
            objective=objective,
            max_params=max_params,
            max_macs=max_macs,
            evaluator=evaluator,
            proxy=proxy,
            data=data,
            size=size,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            label_smoothing=label_smoothing,
            pruner=pruner,
            device=device,
            threads=threads,
            storage=storage,
            study=study,
            timeout=timeout,
            workers=workers,
            heartbeat=heartbeat,
            retrain_top=retrain_top,
        ),
    ]
    result, status = _run("search", argv, path, command.search)
    if status == command.INTERRUPTED:  # what was done is kept and returned; running again resumes
        import dataclasses

        return dataclasses.replace(result, stopped="interrupted")
    if status != 0:
        raise RuntimeError(
            f"the study holds {len(result.rows)} trials, fewer than asked: no worker finished "
            "(their messages are above); running it again goes on"
        )
    return result


def _run(command: str, argv: list, path: Path, work):
    """Parse `cnnc COMMAND ARGV -- PATH` as the CLI does, then run the command's work on it."""
    from cnnc.cli import prepare_file
    from cnnc.commands.common import UsageError

    args = _parse(command, [*map(str, argv), "--", str(path)])
    try:
        prepare_file(args)
        return work(args)
    except UsageError as exc:
        raise ValueError(f"cnnc.{command}: {exc}") from None


def _parse(command: str, argv: list[str]):
    """The command's parsed arguments; a value the command refuses raises ValueError (argparse would
    print the usage and exit)."""
    import argparse

    from cnnc.cli import build_parser

    def refuse(message: str):
        raise ValueError(f"cnnc.{command}: {message}")

    parser = build_parser(command)
    for action in parser._actions:  # the command's own parser, whose `error` argparse calls
        if isinstance(action, argparse._SubParsersAction):
            action.choices[command].error = refuse
    return parser.parse_args([command, *argv])


def _program_options(network, args, input, allow_import) -> list[str]:
    """`--network`, `--arg name=value`, `--input` and `--allow-import`, as the commands take them."""
    from cnnc.dsl.literals import write_literal

    words = [] if network is None else [f"--network={network}"]
    if isinstance(args, str):
        raise TypeError(
            f'`args` takes a dict or a list of "name=value" strings, but got the string {args!r}'
        )
    pairs = (
        [f"{k}={write_literal(v)}" for k, v in args.items()]
        if hasattr(args, "items")
        else list(args or ())
    )
    words += [f"--arg={pair}" for pair in pairs]
    if hasattr(input, "items"):
        words += [f"--input={name}={','.join(map(str, shape))}" for name, shape in input.items()]
    elif input is not None:
        words.append(f"--input={','.join(map(str, input))}")
    return words + [f"--allow-import={folder}" for folder in allow_import]


def _options(**given) -> list[str]:
    """Keywords → `--name=value` words: None is left to the command's default, True is the flag
    alone, a list repeats the option (`freeze=["a", "b"]`)."""
    words = []
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [f"{flag}={v}" for v in value]
        else:
            words.append(f"{flag}={value}")
    return words
