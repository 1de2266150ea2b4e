"""APViT exports without a `cam` output (FERModel.has_cam False, written into the ONNX metadata), passes
the existing verification (ONNX Runtime vs PyTorch), and the generated Triton classifier, postprocess and
ensemble configs carry no `cam`; the serving postprocess explains with the layer-1 attention. The
architecture is built narrower and shallower (train/models/apvit.py SIZES) to keep the test fast."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aucues.preprocessing import PreprocessConfig

SIZE = 64
TINY = {"units": (1, 1, 1), "depth": 6, "embed_dim": 32, "num_heads": 2}


@pytest.fixture()
def tiny_apvit(monkeypatch, tmp_path):
    import aucues.train.models.apvit as apvit
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    monkeypatch.setattr(apvit, "SIZES", TINY)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="apvit", method="apvit", method_options={"k": 40}),
                        PreprocessConfig(image_size=SIZE))
    with torch.no_grad():  # the reference's zero head gives constant logits: make them informative
        model.classification_head.fc.weight.normal_(0, 0.5)
    path = tmp_path / "apvit.pt"
    save_checkpoint(path, model)
    return model, path


def test_apvit_exports_verified_without_cam_and_serves_attention(tiny_apvit, tmp_path):
    import onnx
    import onnxruntime as ort

    from aucues.au_regions import template_points
    from aucues.export import ExportConfig, export_onnx
    from aucues.serve.pipeline import postprocess
    from aucues.serve.repository import build_repository, read_repository_spec

    model, ckpt = tiny_apvit
    path = tmp_path / "apvit.onnx"
    report = export_onnx(ckpt, path, ExportConfig(batch=2))
    assert report.verified, report.failures
    proto = onnx.load(str(path))
    names = [o.name for o in proto.graph.output]
    assert names == ["logits", "probabilities"] + [f"attention_{k}" for k in range(1, 6)]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["aucues"])
    assert meta["has_cam"] is False and meta["cam_size"] is None and meta["attention_layer"] == 1
    assert meta["model_config"]["method_options"] == {"k": 40, "r": 0.9}

    build_repository(tmp_path / "repo", onnx=path)
    spec = read_repository_spec(tmp_path / "repo")
    assert spec.has_cam is False and spec.attention_layer == 1
    assert spec.classifier_outputs() == names
    for model_name in ("classifier", "postprocess", "aucues"):
        text = (tmp_path / "repo" / model_name / "config.pbtxt").read_text()
        assert '"cam"' not in text and "raw_cam" not in text, model_name
        assert "attention_1" in text or model_name == "aucues" and "attention" in text

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)
    out = dict(zip(names, sess.run(None, {"image": x})))
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x))
    np.testing.assert_allclose(out["logits"], ref.logits.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out["attention_4"], ref.attentions[4].numpy(), rtol=1e-3, atol=1e-4)
    probs = np.full(7, 0.01, np.float32)
    probs[1] = 0.94  # Happiness: AU6, AU12, AU25
    ex = postprocess(spec, probs, None, out["attention_1"][0], template_points(SIZE))
    assert ex.cam is None and ex.label == "Happiness"
    assert sorted(r["au"] for r in ex.au_evidence) == [6, 12, 25] and np.isfinite(ex.interpretability_score)
    assert ex.attention.shape == (SIZE, SIZE)
