"""`aucues export` / `aucues engine`: flags reach the library, bad input is one line, a failed
verification exits 2 and leaves the file marked unverified."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from aucues.preprocessing import PreprocessConfig
from tests.conftest import one_error_line


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=64))
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    save_checkpoint(path, model)
    return path


def test_export_with_flags(cli, ckpt, tmp_path):
    import onnx

    from aucues.export import read_metadata

    out = tmp_path / "m.onnx"
    code, text = cli("export", ckpt, "--out", out, "--exporter", "torchscript", "--layers", "5,3",
                     "--no-simplify", "--batch", "2", "--opset", "18")
    assert code == 0, text
    assert "verified" in text and "m.report.json" in text
    meta = read_metadata(out)
    assert meta["exporter"] == "torchscript" and meta["simplified"] is False and meta["verified"] is True
    assert meta["outputs"] == ["logits", "probabilities", "cam", "attention_3", "attention_5"]
    assert [o.name for o in onnx.load(str(out)).graph.output] == meta["outputs"]
    assert (tmp_path / "m.report.json").exists()


def test_export_logits_only(cli, ckpt, tmp_path):
    from aucues.export import read_metadata

    code, text = cli("export", ckpt, "--out", tmp_path / "l.onnx", "--outputs", "logits", "--batch", "2")
    assert code == 0, text
    assert read_metadata(tmp_path / "l.onnx")["outputs"] == ["logits"]


def test_bad_inputs_one_line(cli, ckpt, tmp_path):
    import torch

    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    for src in ("missing.pt", "corrupt.pt", "foreign.pt"):
        code, text = cli("export", tmp_path / src, "--out", tmp_path / "x.onnx")
        assert code == 1
        one_error_line(text)
    for args in (["--layers", "7"], ["--layers", "a"], ["--exporter", "tf"], ["--opset", "11"],
                 ["--outputs", "cams"], ["--batch", "0"]):
        code, text = cli("export", ckpt, "--out", tmp_path / "x.onnx", *args)
        assert code == 1, args
        one_error_line(text)
    code, text = cli("export", ckpt, "--out", tmp_path / "x.txt")
    assert code == 1 and ".onnx" in one_error_line(text)
    assert not (tmp_path / "x.onnx").exists()


def test_verification_failure_exits_2(cli, ckpt, tmp_path):
    """Tolerances from a YAML config (dataclass <- YAML <- flags): zero tolerance cannot pass."""
    from aucues.export import read_metadata

    cfg = tmp_path / "export.yaml"
    cfg.write_text("tolerances: {atol: 0.0, min_cosine: 1.0000001}\nlayers: [5]\nsimplify: false\n")
    out = tmp_path / "f.onnx"
    code, text = cli("export", ckpt, "--out", out, "--config", cfg, "--batch", "2")
    assert code == 2, text
    assert "verification failed" in text and "Traceback" not in text
    meta = read_metadata(out)
    assert meta["verified"] is False and meta["outputs"][-1] == "attention_5"
    code, text = cli("export", ckpt, "--out", out, "--config", tmp_path / "none.yaml")
    assert code == 1
    one_error_line(text)


@pytest.mark.skipif(torch.cuda.is_available() and importlib.util.find_spec("tensorrt") is not None,
                    reason="a GPU and tensorrt are present (tests/export/test_tensorrt.py builds engines)")
def test_engine_without_gpu_fails_in_one_line(cli, ckpt, tmp_path):
    from aucues.export import ExportConfig, export_onnx

    onnx_path = tmp_path / "m.onnx"
    export_onnx(ckpt, onnx_path, ExportConfig(verify=False, layers=(5,)))
    code, text = cli("engine", onnx_path, "--out", tmp_path / "m.plan", "--fp16", "--max-batch", "16")
    assert code != 0
    line = one_error_line(text)
    assert "GPU" in line or "TensorRT" in line
    assert "aucues[gpu]" in line or "GPU" in line
    code, text = cli("engine", tmp_path / "missing.onnx", "--out", tmp_path / "m.plan")
    assert code == 1 and "no such file" in one_error_line(text)
    code, text = cli("engine", onnx_path, "--out", tmp_path / "m.plan", "--min-batch", "9")
    assert code == 1
    one_error_line(text)


def test_missing_dependency_is_one_line(cli, ckpt, tmp_path, monkeypatch):
    """A partial install (a GPU image with its own torch and some of aucues' dependencies) gets one
    line naming the package to install, not a traceback from deep inside the export."""
    import sys

    monkeypatch.setitem(sys.modules, "onnxslim", None)  # `import onnxslim` now raises ModuleNotFoundError
    code, text = cli("export", ckpt, "--out", tmp_path / "m.onnx", "--exporter", "torchscript")
    line = one_error_line(text)
    assert code == 1 and "'onnxslim' is not installed" in line and "pip install onnxslim" in line
    assert not (tmp_path / "m.onnx").exists()
