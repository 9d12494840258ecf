"""`cnnc check SPACE`: a search space is checked through its members and its decisions are listed,
so CI can check space files as it checks networks."""

from __future__ import annotations

import json

from conftest import run_cli

TINY_OK = """\
ok: tiny: a search space with 5 decisions, 1 conditional, 36 members, 36 distinct architectures; `cnnc search` explores it
  width    8 | 16 | 32              zoo/spaces/tiny.cnn:11:13
  depth    1 | 2                    zoo/spaces/tiny.cnn:14:42
  kernel0  3 | 5                    zoo/spaces/tiny.cnn:13:39
  kernel1  3 | 5                    zoo/spaces/tiny.cnn:13:39  only when depth = 2
  pool     MaxPool(2) | AvgPool(2)  zoo/spaces/tiny.cnn:15:24
"""


def test_a_space_file_checks_ok_and_lists_every_decision(in_root, capsys):
    code, out, err = run_cli(["check", "zoo/spaces/tiny.cnn"], capsys)
    assert (code, out, err) == (0, TINY_OK, "")


def test_the_json_form_names_the_space_and_its_decisions(in_root, capsys):
    code, out, _ = run_cli(["check", "zoo/spaces/tiny.cnn", "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "networks": ["tiny"],
        "spaces": [
            {
                "network": "tiny",
                "decisions": ["width", "depth", "kernel0", "kernel1", "pool"],
                "members": 36,
                "exact": True,
            }
        ],
        "diagnostics": [],
    }


def test_spaces_and_networks_check_together(in_root, capsys):
    code, out, _ = run_cli(["check", "zoo/spaces/tiny.cnn", "zoo/vgg16.cnn"], capsys)
    assert code == 0
    assert out.startswith(TINY_OK)  # in the order of the files
    assert out[len(TINY_OK) :] == "ok: vgg16: [3, 224, 224] → [1000], 41 nodes\n"


def test_a_space_whose_every_member_fails_is_an_error_located_in_the_program(tmp_path, capsys):
    path = tmp_path / "bad.cnn"
    path.write_text(
        'network bad { input [3, 4, 4]\n  return in -> Conv(8, choice(5, 7, name = "k")) }\n'
    )
    code, out, err = run_cli(["check", path], capsys)
    assert code == 1
    assert out == ""
    assert err.splitlines()[0].startswith("error[E0303]: `Conv` shrinks the height to 0")
    assert "bad.cnn:2:16" in err and "E0501" not in err


def test_the_commands_that_need_one_network_refuse_a_space_with_e0501(tmp_path, capsys):
    path = tmp_path / "space.cnn"
    path.write_text(
        "network N {\n    input [3, 32, 32]\n    return in -> Conv(choice(16, 32), 3)\n}\n"
    )
    code, _, err = run_cli(
        ["summary", path, "--color", "never"], capsys
    )  # the table up to the choice
    assert code == 1
    assert err == (
        "error[E0501]: this file is a search space: `choice(…)` needs a decision\n"
        f" --> {path}:3:23\n"
        "  |\n"
        "3 |     return in -> Conv(choice(16, 32), 3)\n"
        "  |                       ^^^^^^^^^^^^^^ 2 options\n"
        "  |\n"
        "  = help: run `cnnc search FILE` to explore it, or replace the choice with one option\n"
        "\n"
        "found 1 error in 1 file\n"
    )
