"""`cnnc explain CODE`: the page for a diagnostic code — a failing example, why, and the fix."""

from __future__ import annotations

from importlib import resources

from cnnc.commands import common

HELP = "explain a diagnostic code, e.g. `cnnc explain E0301`"


def configure(p) -> None:
    p.add_argument("code", nargs="?", help="a code such as E0301 (omit to list all codes)")


def pages() -> dict[str, str]:
    folder = resources.files("cnnc.dsl").joinpath("explain")
    return {f.name[:-3]: f.read_text(encoding="utf-8") for f in folder.iterdir() if f.name.endswith(".md")}


def run(args) -> int:
    all_pages = pages()
    if args.code is None:
        for code in sorted(all_pages):
            print(f"{code}  {all_pages[code].splitlines()[0].lstrip('# ').split(': ', 1)[-1]}")
        return common.OK
    code = args.code.upper()
    if code not in all_pages:
        raise common.UsageError(f"no such code `{args.code}`; `cnnc explain` lists them")
    print(all_pages[code].rstrip())
    return common.OK
