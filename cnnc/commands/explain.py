"""`cnnc explain CODE`: the page for a diagnostic code — a failing example, why, and the fix — or,
given an op's name (`cnnc explain Conv`), the op's reference page, as `cnnc ops` prints it."""

from __future__ import annotations

from cnnc.commands import common

HELP = "explain a diagnostic code or an op, e.g. `cnnc explain E0301`, `cnnc explain Conv`"


def configure(p) -> None:
    p.add_argument(
        "code",
        nargs="?",
        help="a code such as E0301, or an op such as Conv (omit to list all codes)",
    )


def pages() -> dict[str, str]:
    from importlib import resources

    folder = resources.files("cnnc.dsl").joinpath("explain")
    return {
        f.name[:-3]: f.read_text(encoding="utf-8")
        for f in folder.iterdir()
        if f.name.endswith(".md")
    }


def run(args) -> int:
    all_pages = pages()
    if args.code is None:
        for code in sorted(all_pages):
            print(f"{code}  {all_pages[code].splitlines()[0].lstrip('# ').split(': ', 1)[-1]}")
        return common.OK
    code = args.code.upper()
    if code not in all_pages:
        from cnnc.commands import ops

        spec = ops.find(args.code)
        if spec is None:
            raise common.UsageError(unknown(args.code, all_pages))
        print(ops.page(spec))
        return common.OK
    print(all_pages[code].rstrip())
    return common.OK


def unknown(text: str, all_pages) -> str:
    """No code and no op of that name: the nearest op if it looks like one, else how to list both."""
    from cnnc.commands import ops

    if text[:1].isalpha() and not (text[:1] in "EW" and text[1:].isdigit()):
        hint = ops.unknown(text)
        if "did you mean" in hint:
            return f"no such code or op `{text}`; " + hint.split("; ", 1)[1]
    return f"no such code or op `{text}`; `cnnc explain` lists the codes, `cnnc ops` the ops"
