"""Export of real (randomly initialised) FER models with both exporters, checked in ONNX Runtime
against the model's own PyTorch forward (not the export wrapper)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

SIZE = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=SIZE))
    path = tmp_path_factory.mktemp("ckpt") / "r18.pt"
    save_checkpoint(path, model, {"au": {"layers": [5], "lambda": 4.0, "codebook": "paper"}})
    return path


@pytest.fixture(scope="module", params=["dynamo", "torchscript"])
def exported(request, ckpt, tmp_path_factory):
    from aucues.export import ExportConfig, export_onnx

    out = tmp_path_factory.mktemp(request.param) / "model.onnx"
    report = export_onnx(ckpt, out, ExportConfig(exporter=request.param, batch=3))
    return request.param, out, report


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_exporter_verified_and_report(exported):
    exporter, out, report = exported
    assert report.verified, report.failures
    assert report.checker == "ok"
    assert report.exporter == exporter and report.opset >= 18
    assert report.batch_sizes == [1, 3]
    kinds = {(e["input"], e["batch"]) for e in report.errors}
    assert kinds == {("random", 1), ("random", 3), ("real", 1), ("real", 3)}
    assert all(e["ok"] and e["cosine"] >= 0.9999 for e in report.errors)
    assert report.file_size_bytes == out.stat().st_size
    assert report.report_file.exists() and report.report_file.name == "model.report.json"
    # atomic write: nothing but the model and its report in the folder
    assert sorted(os.listdir(out.parent)) == ["model.onnx", "model.report.json"]


def test_names_symbolic_batch_and_shapes(exported):
    import onnx

    from aucues.train.models import ModelConfig, build_model

    _, out, _ = exported
    m = onnx.load(str(out))
    assert [i.name for i in m.graph.input] == ["image"]
    assert _dims(m.graph.input[0]) == ["batch", 3, SIZE, SIZE]
    names = ["logits", "probabilities", "cam"] + [f"attention_{k}" for k in range(1, 6)]
    assert [o.name for o in m.graph.output] == names
    assert all(_dims(o)[0] == "batch" for o in m.graph.output)
    assert {(o.domain or "ai.onnx"): o.version for o in m.opset_import}["ai.onnx"] >= 18

    sess = _session(out)
    shapes = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=SIZE)).layer_shapes(SIZE)
    for n in (1, 3, 8):
        res = dict(zip(names, sess.run(None, {"image": np.zeros((n, 3, SIZE, SIZE), np.float32)})))
        assert res["logits"].shape == (n, 7) and res["probabilities"].shape == (n, 7)
        assert res["cam"].shape == (n, 7, *shapes[5])
        for k in range(1, 6):
            assert res[f"attention_{k}"].shape == (n, *shapes[k])
        np.testing.assert_allclose(res["probabilities"].sum(1), 1.0, atol=1e-5)


def test_parity_with_model_forward_at_batch_8(exported, ckpt):
    """Independent of the wrapper: the checkpoint's own forward is the reference."""
    from aucues.train.checkpoint import load_checkpoint

    _, out, _ = exported
    model, _ = load_checkpoint(ckpt)
    x = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(x)
    got = _session(out).run(None, {"image": x.numpy()})
    expected = [ref.logits, ref.logits.softmax(1), ref.cam] + [ref.attentions[k] for k in range(1, 6)]
    for r, g in zip(expected, got):
        r = r.numpy()
        assert np.abs(r - g).max() <= 1e-4 * max(1.0, np.abs(r).max())


def test_logits_only_graph_and_layer_subset(ckpt, tmp_path):
    import onnx

    from aucues.export import ExportConfig, export_onnx, read_metadata

    full = export_onnx(ckpt, tmp_path / "full5.onnx", ExportConfig(layers=(5,), batch=2))
    small = export_onnx(ckpt, tmp_path / "logits.onnx", ExportConfig(outputs="logits", batch=2))
    assert full.verified and small.verified, (full.failures, small.failures)
    assert full.outputs == ["logits", "probabilities", "cam", "attention_5"]
    assert small.outputs == ["logits"]
    m_full, m_small = onnx.load(str(tmp_path / "full5.onnx")), onnx.load(str(tmp_path / "logits.onnx"))
    assert [o.name for o in m_small.graph.output] == ["logits"]
    assert len(m_small.graph.node) < len(m_full.graph.node)
    meta = read_metadata(tmp_path / "logits.onnx")
    assert meta["outputs"] == ["logits"] and meta["layers"] == {} and meta["cam_size"] is None
    assert meta["preprocess"]["attention_layers"] == []
    meta5 = read_metadata(tmp_path / "full5.onnx")
    from aucues.train.checkpoint import load_checkpoint

    h5 = list(load_checkpoint(ckpt)[0].layer_shapes(SIZE)[5])
    assert meta5["layers"] == {"5": h5} and meta5["cam_size"] == h5
    assert meta5["preprocess"]["attention_layers"] == [5]


def test_fp16_from_model_object(tmp_path):
    """A model object (no checkpoint) in, fp16 graph out: float32 IO, fp16 tolerances."""
    import onnx

    from aucues.export import FP16_TOLERANCES, ExportConfig, export_onnx, read_metadata
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(1)
    model = build_model(ModelConfig(backbone="resnet18", attention_layers=(5,)), PreprocessConfig(image_size=SIZE))
    rep = export_onnx(model, tmp_path / "h.onnx", ExportConfig(fp16=True, layers=(2, 5), batch=2))
    assert rep.verified, rep.failures
    assert rep.tolerances == FP16_TOLERANCES.to_dict()
    m = onnx.load(str(tmp_path / "h.onnx"))
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in [*m.graph.input, *m.graph.output])
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
    assert rep.file_size_bytes < 0.6 * 44.7e6
    meta = read_metadata(tmp_path / "h.onnx")
    assert meta["fp16"] is True and meta["checkpoint_sha256"] is None and meta["au"] is None
    # the caller's model is left as it was
    assert model.config.attention_layers == (5,)


def test_bad_settings():
    from aucues.export import ExportConfig
    from aucues.export.config import parse_layers

    for kw in ({"opset": 17}, {"layers": (6,)}, {"layers": (5, 5)}, {"exporter": "tf"}, {"outputs": "cams"},
               {"batch": 0}):
        with pytest.raises(AucuesError):
            ExportConfig(**kw)
    assert parse_layers("5,1") == (5, 1) and parse_layers("none") == ()
    with pytest.raises(AucuesError):
        parse_layers("a,b")


def test_bad_sources(tmp_path, ckpt):
    from aucues.export import ExportConfig, export_onnx

    with pytest.raises(AucuesError, match="no such"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx")
    with pytest.raises(AucuesError, match=".onnx"):
        export_onnx(ckpt, tmp_path / "m.txt")
    with pytest.raises(AucuesError, match="FERModel"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx", ExportConfig(verify=False))
    assert not (tmp_path / "m.onnx").exists()


def test_resnet50_large_maps_224(tmp_path):
    """The paper's network: layer 3-5 maps 28x28 at 224 px, attention_1 112x112. ~25-40 s with
    verification on 2 busy cores (under the 60 s `slow` threshold)."""
    from aucues.export import ExportConfig, export_onnx
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet50", large_maps=True), PreprocessConfig(image_size=224))
    rep = export_onnx(model, tmp_path / "r50.onnx", ExportConfig(batch=2))
    assert rep.verified, rep.failures
    assert rep.shapes["cam"] == ["batch", 7, 28, 28]
    assert rep.shapes["attention_1"] == ["batch", 112, 112]
    assert rep.shapes["attention_2"] == ["batch", 56, 56]
    assert all(rep.shapes[f"attention_{k}"] == ["batch", 28, 28] for k in (3, 4, 5))
