"""`aucues predict` inputs without a server: only regular files are read (FIFO, /dev/zero, dangling
symlinks are one error each, never a hang or a silent skip), other files in a folder are counted in
a `skipped` note, and a bad --overlays is one line before any request."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from aucues.errors import AucuesError
from aucues.serve.predict import iter_inputs, run_predict


def _collect(paths, timeout=20.0):
    """iter_inputs in a thread: the old reader blocked forever on a FIFO; a test must not."""
    out = []
    t = threading.Thread(target=lambda: out.extend(iter_inputs(paths)), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "iter_inputs hung"
    return out


@pytest.fixture()
def folder(tmp_path, astronaut_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(astronaut_path, d / "a.png")
    (d / "notes.txt").write_text("not an image")
    (d / "sub" / "readme.md").write_text("neither")
    (d / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (d / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    os.mkfifo(d / "pipe.jpg")
    return d


def test_folder_reports_every_input(folder):
    items = _collect([folder, "/dev/zero", folder / "missing.png"])
    by_name = {i.name: i for i in items}
    assert by_name[str(folder)].skipped == 2  # notes.txt, sub/readme.md: counted, not silent
    assert by_name[str(folder / "a.png")].data[:4] == b"\x89PNG"
    assert "dangling symlink" in by_name[str(folder / "gone.jpg")].error
    assert "not a regular file" in by_name[str(folder / "gone.mp4")].error
    assert "not a regular file" in by_name[str(folder / "pipe.jpg")].error
    assert "not a regular file" in by_name["/dev/zero"].error
    assert by_name[str(folder / "missing.png")].error == "no such file or directory"
    assert all("\n" not in (i.error or "") for i in items)


class _StubClient:
    """Stands in for the server: every request fails, so only the input handling is exercised."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def check_ready(self):
        pass

    spec = None

    def predict_many(self, datas, maps=False):
        from aucues.serve.client import PredictError

        raise PredictError("stub server")


def test_run_predict_counts_skipped_and_failed(folder, monkeypatch):
    import aucues.serve.client as client

    monkeypatch.setattr(client, "AucuesClient", _StubClient)
    lines = []
    ok, failed = run_predict([folder], as_json=True, emit=lines.append)
    docs = [json.loads(s) for s in lines]
    assert (ok, failed) == (0, 4)  # a.png (stub error), gone.jpg, gone.mp4, pipe.jpg
    assert {"input": str(folder), "skipped": 2, "reason": "neither images nor videos"} in docs
    lines.clear()
    run_predict([folder], emit=lines.append)
    assert f"{folder}: 2 files skipped (neither images nor videos)" in lines


def test_overlays_pointing_at_a_file_is_one_line(tmp_path, astronaut_path, cli):
    target = tmp_path / "file.png"
    target.write_bytes(b"x")
    with pytest.raises(AucuesError, match="exists and is not a folder"):
        run_predict([astronaut_path], overlays=target)
    code, out = cli("predict", astronaut_path, "--overlays", target, "--url", "127.0.0.1:9")
    assert code == 1 and "Traceback" not in out
    assert [ln for ln in out.splitlines() if ln.startswith("error:")] == [
        f"error: --overlays {target}: exists and is not a folder"]
