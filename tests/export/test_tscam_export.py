"""TS-CAM (DeiT-S/16, timm) exports with the usual ONNX contract, passes the existing verification
(ONNX Runtime vs the PyTorch eval forward) and its outputs go through the serving postprocess."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aucues.preprocessing import PreprocessConfig

SIZE = 64


@pytest.mark.slow  # ~20 s: DeiT-S export + ONNX Runtime verification on 2 shared cores
def test_tscam_exports_verified_and_postprocesses(tmp_path):
    import onnx
    import onnxruntime as ort

    from aucues.au_regions import template_points
    from aucues.export import ExportConfig, export_onnx
    from aucues.serve.pipeline import postprocess
    from aucues.serve.repository import build_repository, read_repository_spec
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tscam"), PreprocessConfig(image_size=SIZE))
    path = tmp_path / "tscam.onnx"
    report = export_onnx(model, path, ExportConfig(batch=2))
    assert report.verified, report.failures
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities", "cam", "attention_1",
                                                    "attention_2", "attention_3", "attention_4", "attention_5"]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["aucues"])
    assert meta["model_config"]["backbone"] == "tscam"
    assert report.shapes["cam"][1:] == [7, 4, 4]

    build_repository(tmp_path / "repo", onnx=path)
    spec = read_repository_spec(tmp_path / "repo")
    assert spec.cam_size == (4, 4)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, SIZE, SIZE)).astype(np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x))
    np.testing.assert_allclose(out["cam"], ref.cam.numpy(), rtol=1e-3, atol=1e-4)
    probs = np.full(7, 0.01, np.float32)
    probs[1] = 0.94  # Happiness: AU6, AU12, AU25 (untrained model; the label is set here)
    ex = postprocess(spec, probs, out["cam"][0], out["attention_5"][0], template_points(SIZE))
    assert ex.label == "Happiness" and sorted(r["au"] for r in ex.au_evidence) == [6, 12, 25]
    assert ex.cam.shape == (SIZE, SIZE) and np.isfinite(ex.cam).all()
