"""One module per `cnnc` subcommand: each defines `HELP`, `configure(parser)` and `run(args) -> int`.

Modules import their heavy dependencies inside `run`, so `cnnc --help` and `cnnc check` stay fast.
"""
