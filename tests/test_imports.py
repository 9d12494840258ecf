"""Imports stay home, and reading a source is bounded (dsl/imports.py, dsl/source.py).

An import reaches only regular `.cnn` files inside the opened program's directory tree, the zoo and
directories allowed on purpose; every other target is a located error that shows nothing of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli

from cnnc.api import graph, load_program
from cnnc.dsl.diagnostics import CnncError
from cnnc.dsl.imports import MAX_IMPORT_PATH
from cnnc.dsl.source import MAX_SOURCE_BYTES, SourceFile, SourceTooLarge, read_bytes

SECRET = "TOPSECRET-9f1c"  # in every file outside the allowed roots: no diagnostic may show it
BLOCK = "block B() {\n    return in -> ReLU\n}\n"


def program(imp: str) -> str:
    return f'import "{imp}"\n\nnetwork N {{\n    input [3, 8, 8]\n    return in -> B\n}}\n'


@pytest.fixture
def tree(tmp_path):
    """proj/ (the program's tree), lib/ (a shared folder) and outside/ (secrets), with traps in proj/."""
    proj, lib, outside = tmp_path / "proj", tmp_path / "lib", tmp_path / "outside"
    for d in (proj / "sub", lib, outside):
        d.mkdir(parents=True)
    (proj / "sub" / "ok.cnn").write_text(BLOCK)
    (lib / "shared.cnn").write_text(BLOCK)
    (outside / "secret.cnn").write_text(f"{SECRET} = (\n")  # a syntax error would echo this line
    (outside / "secret.txt").write_text(SECRET)
    (proj / "notes.txt").write_text(SECRET)
    (proj / "to_secret.cnn").symlink_to(outside / "secret.cnn")
    (proj / "to_passwd.cnn").symlink_to("/etc/passwd")
    (proj / "to_null.cnn").symlink_to("/dev/null")
    (proj / "to_notes.cnn").symlink_to(proj / "notes.txt")
    (proj / "loop_a.cnn").symlink_to(proj / "loop_b.cnn")
    (proj / "loop_b.cnn").symlink_to(proj / "loop_a.cnn")
    (proj / "folder.cnn").mkdir()
    os.mkfifo(proj / "fifo.cnn")
    return proj, lib, outside


def codes_of(path: Path, **kw) -> tuple[list[str], str]:
    try:
        load_program(path, **kw)
    except CnncError as exc:
        return [d.code for d in exc.diagnostics], str(exc)
    return [], ""


HOSTILE = [
    ("/etc/passwd", "E0211"),
    ("/proc/self/environ", "E0211"),
    ("/dev/zero", "E0211"),
    ("{outside}/secret.cnn", "E0210"),  # absolute, outside
    ("../outside/secret.cnn", "E0210"),  # `..` escaping
    ("sub/../../outside/secret.cnn", "E0210"),
    ("to_secret.cnn", "E0210"),  # a link inside the tree that points out
    ("to_passwd.cnn", "E0210"),
    ("to_null.cnn", "E0210"),
    ("notes.txt", "E0211"),
    ("to_notes.cnn", "E0211"),  # named .cnn, but a link to a .txt
    ("sub", "E0211"),
    ("folder.cnn", "E0212"),
    ("fifo.cnn", "E0212"),  # would block forever if opened
    ("loop_a.cnn", "E0213"),
    ("a\x00b.cnn", "E0213"),
    ("x" * (MAX_IMPORT_PATH + 1) + ".cnn", "E0213"),
    ("y" * 300 + ".cnn", "E0213"),  # one component longer than the file system allows
    ("missing.cnn", "E0202"),
]


@pytest.mark.parametrize(("target", "code"), HOSTILE, ids=[f"{c}-{t[:24]!r}" for t, c in HOSTILE])
def test_hostile_import_is_a_located_error_that_shows_nothing_of_the_target(tree, target, code):
    proj, _, outside = tree
    main = proj / "main.cnn"
    main.write_text(program(target.format(outside=outside)))
    codes, text = codes_of(main)
    assert codes == [code]
    assert f"error[{code}]" in text and "main.cnn:1:1" in text
    assert SECRET not in text and "root:" not in text


def test_cli_import_of_etc_passwd_prints_none_of_it(tree, capsys, monkeypatch):
    proj, _, _ = tree
    main = proj / "main.cnn"
    monkeypatch.setenv("CI_TOKEN", SECRET)
    first_line = Path("/etc/passwd").read_text().splitlines()[0]
    for target in (
        "/etc/passwd",
        "to_passwd.cnn",
        "/proc/self/environ",
        "/proc/self/../self/environ",
    ):
        main.write_text(program(target))
        code, out, err = run_cli(["check", main], capsys)
        assert code == 1 and "error[E021" in err
        assert first_line not in out + err and SECRET not in out + err


def test_imports_inside_the_tree_and_the_zoo_are_allowed(tree):
    proj, _, _ = tree
    (proj / "main.cnn").write_text(program("sub/ok.cnn"))
    assert graph(proj / "main.cnn").output_type is not None
    (proj / "sub" / "up.cnn").write_text(program("../sub/ok.cnn"))  # `..` that stays inside is fine
    assert graph(proj / "sub" / "up.cnn").output_type is not None
    zoo = (
        'import "families/resnet.cnn"\nnetwork N {\n    input [3, 8, 8]\n    return in -> ReLU\n}\n'
    )
    (proj / "zoo_user.cnn").write_text(zoo)
    assert len(load_program(proj / "zoo_user.cnn").modules) == 2


def test_a_nested_import_is_held_to_the_opened_file_s_tree(tree):
    """`sub/ok.cnn` may not import `../../outside/…` just because its own folder is deeper."""
    proj, _, _ = tree
    (proj / "sub" / "ok.cnn").write_text('import "../../outside/secret.cnn"\n' + BLOCK)
    (proj / "main.cnn").write_text(program("sub/ok.cnn"))
    codes, text = codes_of(proj / "main.cnn")
    assert codes == ["E0210"] and "ok.cnn:1:1" in text and SECRET not in text


def test_allow_import_and_cnnc_path_open_a_shared_folder(tree, monkeypatch):
    proj, lib, _ = tree
    main = proj / "main.cnn"
    main.write_text(program("../lib/shared.cnn"))
    assert codes_of(main)[0] == ["E0210"]
    assert codes_of(main, allow_import=(lib,))[0] == []
    assert graph(main, allow_import=(str(lib),)).output_type is not None
    main.write_text(program("shared.cnn"))  # allowed folders are searched too
    assert codes_of(main)[0] == ["E0202"]
    monkeypatch.setenv("CNNC_PATH", os.pathsep.join(["", str(proj / "nowhere"), str(lib)]))
    assert codes_of(main)[0] == []


def test_cli_allow_import(tree, capsys, monkeypatch):
    proj, lib, _ = tree
    monkeypatch.chdir(proj)
    (proj / "main.cnn").write_text(program("../lib/shared.cnn"))
    assert run_cli(["summary", "main.cnn"], capsys)[0] == 1
    assert run_cli(["summary", "main.cnn", "--allow-import", lib], capsys)[0] == 0
    code, _, err = run_cli(["summary", "main.cnn", "--allow-import", proj / "nowhere"], capsys)
    assert code == 2 and "not a directory" in err


# -- reading sources --------------------------------------------------------------------------


def test_a_file_over_the_limit_is_e0106_and_costs_nothing(tmp_path, capsys):
    huge = tmp_path / "huge.cnn"
    with open(huge, "wb") as f:
        f.truncate(1 << 30)  # 1 GB, sparse: read, it would take seconds and a gigabyte
    code, _, err = run_cli(["check", huge, "--format", "concise"], capsys)
    assert code == 1 and "error[E0106]" in err and "1,073,741,824 bytes" in err
    with pytest.raises(SourceTooLarge) as info:
        read_bytes(huge)
    assert info.value.size == 1 << 30  # fstat's answer: refused before a single byte was read
    just_over = tmp_path / "over.cnn"
    just_over.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    assert run_cli(["check", just_over], capsys)[0] == 1


def test_an_imported_file_over_the_limit_is_e0106_at_the_import(tmp_path):
    with open(tmp_path / "big.cnn", "wb") as f:
        f.truncate(MAX_SOURCE_BYTES + 1)
    (tmp_path / "main.cnn").write_text(program("big.cnn"))
    codes, text = codes_of(tmp_path / "main.cnn")
    assert codes == ["E0106"] and "main.cnn:1:1" in text


def test_reading_stops_at_the_limit_on_a_pipe():
    r, w = os.pipe()
    os.write(w, b"x" * 5000)
    os.close(w)
    with pytest.raises(SourceTooLarge) as info:
        read_bytes(f"/dev/fd/{r}", limit=4096)
    assert info.value.size == 4097  # one byte past the limit, not the whole stream
    os.close(r)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "\ufeff# bom and comment\r\n"])
def test_an_empty_file_is_e0107(tmp_path, capsys, text):
    f = tmp_path / "empty.cnn"
    f.write_text(text, encoding="utf-8")
    for command in ("check", "summary", "compile"):
        code, _, err = run_cli(
            [command, f, "--format", "concise"] if command == "check" else [command, f], capsys
        )
        assert code == 1 and "E0107" in err, command


def test_a_library_of_blocks_is_not_empty(tmp_path, capsys):
    (tmp_path / "lib.cnn").write_text(BLOCK)
    assert run_cli(["check", tmp_path / "lib.cnn"], capsys)[0] == 0


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_bom_and_every_line_ending_give_the_same_program_and_places(tmp_path, newline):
    text = newline.join(["network N {", "    input [3, 8, 8]", "    return in -> Bogus", "}", ""])
    f = tmp_path / "n.cnn"
    f.write_bytes(("\ufeff" + text).encode("utf-8"))
    with pytest.raises(CnncError) as info:
        graph(f)
    lines = str(info.value).splitlines()
    assert lines[0] == "error[E0201]: unknown op or block `Bogus`"
    assert lines[1].endswith("n.cnn:3:18")


def test_source_file_normalises_once():
    src = SourceFile("t.cnn", "\ufeffa\r\nb\rc\n")
    assert src.text == "a\nb\nc\n" and src.line_count == 4
    assert [src.line_text(n) for n in (1, 2, 3)] == ["a", "b", "c"]
    assert src.line_col(src.text.index("c")) == (3, 1)


def import_chain(folder: Path, length: int) -> Path:
    """f0.cnn imports f1.cnn imports … f{length-1}.cnn; each defines a block, f0 a network using f1's."""
    for i in range(length):
        head = f'import "f{i + 1}.cnn"\n' if i < length - 1 else ""
        body = "network N { input [3, 8, 8] return in -> B1 }\n" if i == 0 else ""
        (folder / f"f{i}.cnn").write_text(f"{head}block B{i} {{ return in -> ReLU }}\n{body}")
    return folder / "f0.cnn"


def test_a_long_import_chain_needs_no_recursion(tmp_path, capsys, monkeypatch):
    """The loader keeps its own stack: a chain as long as the cap allows loads under a recursion
    limit far below its length (Python's own stack would overflow at ~500 files)."""
    import sys

    from cnnc.dsl import imports

    main = import_chain(tmp_path, imports.MAX_FILES)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(150)
    try:
        loaded = load_program(main)
    finally:
        sys.setrecursionlimit(before)
    assert len(loaded.modules) == imports.MAX_FILES
    code, out, _ = run_cli(["check", main], capsys)
    assert (code, out) == (0, "ok: N: [3, 8, 8] → [3, 8, 8], 2 nodes\n")


def test_a_chain_past_the_file_cap_stops_at_the_import_that_passes_it(tmp_path, capsys):
    from cnnc.dsl import imports

    main = import_chain(tmp_path, imports.MAX_FILES + 300)
    code, _, err = run_cli(["check", main, "--format", "concise"], capsys)
    assert code == 1
    last = imports.MAX_FILES - 1
    assert err.splitlines()[0] == (
        f"{tmp_path / f'f{last}.cnn'}:1:1: error[E0710]: the program imports more "
        f"than {imports.MAX_FILES} files"
    )
    assert err.count("error[") == 1


def test_thousands_of_imports_of_one_file_stop_at_the_cap(tmp_path):
    """5,000 one-line files imported by one: refused after the first 255, not read one by one."""
    from cnnc.dsl import imports

    for i in range(imports.MAX_FILES + 10):
        (tmp_path / f"b{i}.cnn").write_text(f"block B{i} {{ return in -> ReLU }}\n")
    lines = [f'import "b{i % (imports.MAX_FILES + 10)}.cnn"' for i in range(5000)]
    (tmp_path / "main.cnn").write_text(
        "\n".join(lines) + "\nnetwork N { input [3, 8, 8] return in -> B0 }\n"
    )
    with pytest.raises(CnncError) as caught:
        load_program(tmp_path / "main.cnn")
    (d,) = caught.value.diagnostics
    assert (d.code, d.span.line) == ("E0710", imports.MAX_FILES)


def test_the_source_of_a_program_is_capped_in_all(tmp_path, monkeypatch):
    from cnnc.dsl import imports

    monkeypatch.setattr(imports, "MAX_PROGRAM_CHARS", 1000)
    filler = "# " + "x" * 400 + "\n"
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.cnn").write_text(
            f"{filler}block {name.upper()} {{ return in -> ReLU }}\n"
        )
    (tmp_path / "main.cnn").write_text(
        'import "a.cnn"\nimport "b.cnn"\nimport "c.cnn"\n'
        "network N { input [3, 8, 8] return in -> A -> B -> C }\n"
    )
    with pytest.raises(CnncError) as caught:
        load_program(tmp_path / "main.cnn")
    (d,) = caught.value.diagnostics
    assert (d.code, d.span.line) == ("E0710", 3)
    assert d.message == "the program imports more than 1,000 bytes of source (1,399 with this file)"
