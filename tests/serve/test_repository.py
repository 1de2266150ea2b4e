"""`aucues repository build`: a complete repository from an ONNX or a checkpoint, configs from the
ONNX metadata, clear one-line errors for models the server cannot use."""

from __future__ import annotations

import pytest

from aucues.errors import AucuesError
from aucues.serve.repository import build_repository, read_repository_spec
from aucues.serve.spec import spec_from_onnx


def test_build_from_onnx(tiny_onnx, tmp_path):
    out = tmp_path / "repo"
    rep = build_repository(out, onnx=tiny_onnx, instances=2, max_batch=16)
    assert rep["image_size"] == 96 and rep["layers"]["5"] == [12, 12] and rep["backend"] == "python"
    for rel in ("preprocess/1/model.py", "preprocess/config.pbtxt", "classifier/1/model.onnx",
                "classifier/1/model.py", "classifier/labels.txt", "postprocess/1/model.py", "aucues/config.pbtxt"):
        assert (out / rel).is_file(), rel
    assert (out / "aucues" / "1").is_dir()
    spec = spec_from_onnx(tiny_onnx)
    assert read_repository_spec(out) == spec
    assert (out / "classifier" / "labels.txt").read_text().split() == list(spec.class_names)
    assert "count: 2" in (out / "classifier" / "config.pbtxt").read_text()
    # rebuilding over an aucues repository replaces it; no temporary folders are left behind
    build_repository(out, onnx=tiny_onnx, backend="onnxruntime")
    assert 'platform: "onnxruntime_onnx"' in (out / "classifier" / "config.pbtxt").read_text()
    assert not (out / "classifier" / "1" / "model.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_build_tensorrt_needs_plan(tiny_onnx, tmp_path):
    with pytest.raises(AucuesError, match="--plan"):
        build_repository(tmp_path / "r", onnx=tiny_onnx, backend="tensorrt")
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"not really an engine")  # copied as is; only a GPU server can load it
    build_repository(tmp_path / "r", onnx=tiny_onnx, backend="tensorrt", plan=plan)
    assert (tmp_path / "r" / "classifier" / "1" / "model.plan").read_bytes() == b"not really an engine"
    assert not (tmp_path / "r" / "classifier" / "1" / "model.onnx").exists()


def test_refuses_models_it_cannot_serve(tiny_onnx, tmp_path):
    import onnx

    m = onnx.load(str(tiny_onnx))
    del m.graph.output[2:]  # like --outputs logits: no cam/attention
    onnx.save(m, str(tmp_path / "logits.onnx"))
    with pytest.raises(AucuesError, match="missing outputs"):
        build_repository(tmp_path / "r1", onnx=tmp_path / "logits.onnx")
    m = onnx.load(str(tiny_onnx))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(m, str(tmp_path / "fixed.onnx"))
    with pytest.raises(AucuesError, match="batch axis is fixed"):
        build_repository(tmp_path / "r2", onnx=tmp_path / "fixed.onnx")
    m = onnx.load(str(tiny_onnx))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "nometa.onnx"))
    with pytest.raises(AucuesError, match="metadata"):
        build_repository(tmp_path / "r3", onnx=tmp_path / "nometa.onnx")
    with pytest.raises(AucuesError, match="exactly one"):
        build_repository(tmp_path / "r4")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(AucuesError, match="not an aucues repository"):
        build_repository(tmp_path / "busy", onnx=tiny_onnx)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_build_from_checkpoint(cli, tiny_checkpoint, tmp_path):
    code, out = cli("repository", "build", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "repo",
                    "--instances", "1", "--max-batch", "4")
    assert code == 0, out
    assert (tmp_path / "repo" / "classifier" / "1" / "model.onnx").is_file()
    assert read_repository_spec(tmp_path / "repo").image_size == 96
    code, out = cli("repository", "build", "--onnx", tmp_path / "missing.onnx", "--out", tmp_path / "r2")
    assert code == 1 and "no such ONNX file" in out and "Traceback" not in out
