"""`repository build --out DIR` never deletes what it did not write: a foreign non-empty folder is
refused unless --force, and even then only its own model folders are replaced."""

from __future__ import annotations

import pytest

from aucues.errors import AucuesError
from aucues.serve.repository import MARKER, build_repository


def test_refuses_a_foreign_folder_without_force(tiny_onnx, tmp_path):
    out = tmp_path / "models"
    (out / "other_model" / "1").mkdir(parents=True)
    (out / "other_model" / "config.pbtxt").write_text("name: 'other'")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AucuesError, match="not an aucues repository.*--force"):
        build_repository(out, onnx=tiny_onnx)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "other_model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_force_replaces_only_its_own_model_folders(tiny_onnx, tmp_path):
    out = tmp_path / "models"
    (out / "other_model").mkdir(parents=True)
    (out / "other_model" / "config.pbtxt").write_text("name: 'other'")
    (out / "notes.txt").write_text("mine")
    (out / "classifier").mkdir()
    (out / "classifier" / "stale.txt").write_text("old")
    build_repository(out, onnx=tiny_onnx, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "other_model" / "config.pbtxt").read_text() == "name: 'other'"
    assert not (out / "classifier" / "stale.txt").exists()
    assert (out / "aucues" / "config.pbtxt").is_file() and (out / MARKER).is_file()
    # now it is ours: a rebuild needs no --force and still keeps the other entries
    build_repository(out, onnx=tiny_onnx, backend="onnxruntime")
    assert (out / "notes.txt").read_text() == "mine" and (out / "other_model").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_cli_force_flag(tiny_onnx, tmp_path):
    from typer.testing import CliRunner

    from aucues.cli.main import app

    out = tmp_path / "models"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    r = CliRunner().invoke(app, ["repository", "build", "--out", str(out), "--onnx", str(tiny_onnx)])
    assert r.exit_code != 0 and (out / "keep.txt").exists() and not (out / "aucues").exists()
    r = CliRunner().invoke(app, ["repository", "build", "--out", str(out), "--onnx", str(tiny_onnx), "--force"])
    assert r.exit_code == 0, r.output
    assert (out / "keep.txt").read_text() == "x" and (out / "aucues" / "config.pbtxt").is_file()
