"""dsl/safefs.py: writes replace planted links instead of following them; reads refuse FIFOs and devices."""

from __future__ import annotations

import os

import pytest

from cnnc.dsl import safefs


def test_write_replaces_a_planted_link_and_leaves_its_target_alone(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "trials.csv").symlink_to(victim)
    written = safefs.write_text(shared / "trials.csv", "a,b\n")
    assert written.replaced_link
    assert victim.read_text() == "precious\n"
    assert not (shared / "trials.csv").is_symlink()
    assert (shared / "trials.csv").read_text() == "a,b\n"
    assert sorted(os.listdir(shared)) == ["trials.csv"]  # no temporary file left behind


def test_write_of_a_new_file_replaces_no_link_and_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        written = safefs.write_bytes(tmp_path / "x.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert not written.replaced_link
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), safefs.replacing(target) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["run.json"]


def test_replacing_path_serves_writers_that_take_a_path(tmp_path):
    (tmp_path / "plot.png").symlink_to(tmp_path / "elsewhere.png")
    with safefs.replacing_path(tmp_path / "plot.png") as (tmp, written), open(tmp, "wb") as f:
        f.write(b"png")
    assert written.replaced_link
    assert not (tmp_path / "elsewhere.png").exists()
    assert (tmp_path / "plot.png").read_bytes() == b"png"


def test_open_regular_refuses_fifos_devices_and_folders_by_type(tmp_path):
    os.mkfifo(tmp_path / "x.png")
    with pytest.raises(safefs.NotRegular) as e:
        safefs.open_regular(tmp_path / "x.png")  # returns at once: a FIFO is never opened
    assert e.value.what == "fifo"
    with pytest.raises(safefs.NotRegular) as e:
        safefs.open_regular("/dev/zero")
    assert e.value.what == "device"
    with pytest.raises(safefs.NotRegular) as e:
        safefs.open_regular(tmp_path)
    assert e.value.what == "folder"


def test_open_regular_follows_links_only_when_asked(tmp_path):
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with safefs.open_regular(tmp_path / "link") as f:
        assert f.read() == b"data"
    with pytest.raises(safefs.NotRegular) as e:
        safefs.open_regular(tmp_path / "link", follow=False)
    assert e.value.what == "link"
    (tmp_path / "to_fifo").symlink_to("/dev/null")
    with pytest.raises(safefs.NotRegular):
        safefs.open_regular(
            tmp_path / "to_fifo"
        )  # a link to a device is refused by what it reaches


def test_link_hook_hears_of_each_replaced_link_with_its_target(tmp_path, monkeypatch):
    heard = []
    monkeypatch.setattr(safefs, "link_hook", heard.append)
    (tmp_path / "a.csv").symlink_to(tmp_path / "elsewhere")
    safefs.write_text(tmp_path / "a.csv", "x")
    safefs.write_text(tmp_path / "b.csv", "y")  # no link: nothing said
    assert [(w.path, w.link_target) for w in heard] == [
        (str(tmp_path / "a.csv"), str(tmp_path / "elsewhere"))
    ]
    assert not (tmp_path / "elsewhere").exists()


def test_temporaries_keep_the_suffix_for_writers_that_choose_a_format_by_it(tmp_path):
    with safefs.replacing_path(tmp_path / "plot.png") as (tmp, _):
        assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "wb").close()


def test_folder_inside_refuses_links_files_and_parents(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    assert safefs.folder_inside(root, "lib/deep") == str(root / "lib" / "deep")
    (root / "linked").symlink_to(tmp_path)
    with pytest.raises(safefs.NotRegular, match="is a link, not a folder"):
        safefs.folder_inside(root, "linked/x")
    (root / "file").write_text("")
    with pytest.raises(safefs.NotRegular, match="is a file, not a folder"):
        safefs.folder_inside(root, "file")
    with pytest.raises(ValueError, match="leaves"):
        safefs.folder_inside(root, "../out")


def test_open_lock_refuses_links_and_fifos(tmp_path):
    import fcntl

    with safefs.open_lock(tmp_path / "a.lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert f.readable() and (tmp_path / "a.lock").is_file()
    assert (tmp_path / "a.lock").read_bytes() == b""
    (tmp_path / "b.lock").symlink_to(tmp_path / "victim")
    with pytest.raises(safefs.NotRegular, match="is a link"):
        safefs.open_lock(tmp_path / "b.lock")
    assert not (tmp_path / "victim").exists()
    os.mkfifo(tmp_path / "c.lock")
    with pytest.raises(safefs.NotRegular, match="is a fifo"):
        safefs.open_lock(tmp_path / "c.lock")
    with pytest.raises(FileNotFoundError):
        safefs.open_lock(tmp_path / "d.lock", create=False)
    assert not (tmp_path / "d.lock").exists()
