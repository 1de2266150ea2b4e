"""Every CAM method exports with the same ONNX contract, passes verification (ONNX Runtime vs the
PyTorch eval forward) and its graph has no training-only branch: no random ops, ADL and CutMix
export exactly the WGAP model's graph, ACoL's head B reads the un-erased features."""

from __future__ import annotations

import json

import pytest
import torch

from aucues.preprocessing import PreprocessConfig

SIZE = 32
RANDOM_OPS = {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Bernoulli", "Multinomial"}
OPTS = {"acol": {"hidden": 32}}


def _export(method, tmp_path):
    import onnx

    from aucues.export import ExportConfig, export_onnx
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", method=method, method_options=OPTS.get(method, {})),
                        PreprocessConfig(image_size=SIZE))
    model.train()  # export must not depend on the caller's mode: the wrapper evaluates
    path = tmp_path / f"{method}.onnx"
    report = export_onnx(model, path, ExportConfig(batch=2))
    return report, onnx.load(str(path))


def _check_contract(report, proto, method):
    assert report.verified, report.failures
    names = [o.name for o in proto.graph.output]
    assert names == ["logits", "probabilities", "cam", "attention_1", "attention_2", "attention_3",
                     "attention_4", "attention_5"]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["aucues"])
    assert meta["model_config"]["method"] == method
    assert report.shapes["cam"][1:] == [7, 4, 4]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & RANDOM_OPS, ops & RANDOM_OPS


def test_acol_export_has_no_erasing_branch(tmp_path):
    report, proto = _export("acol", tmp_path)
    _check_contract(report, proto, "acol")
    first = {}
    for n in proto.graph.node:
        for h in "AB":
            if n.op_type == "Conv" and any(i.endswith(f"classifier_{h}.0.weight") for i in n.input):
                first[h] = n.input[0]
    assert set(first) == {"A", "B"} and first["A"] == first["B"]  # B sees the same, un-erased features
    _serves(report.path, tmp_path)


def _serves(onnx_path, tmp_path):
    """The repository builder reads the method's ONNX like any other, and the serving postprocess turns
    its outputs into a label with AU evidence (the Triton models run these same functions)."""
    import numpy as np
    import onnxruntime as ort

    from aucues.au_regions import template_points
    from aucues.serve.pipeline import postprocess
    from aucues.serve.repository import build_repository, read_repository_spec

    build_repository(tmp_path / "repo", onnx=onnx_path)
    spec = read_repository_spec(tmp_path / "repo")
    assert spec.cam_size == (4, 4)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, SIZE, SIZE)).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, {"image": x})))
    probs = np.full(7, 0.01, np.float32)
    probs[1] = 0.94  # Happiness: AU6, AU12, AU25 (the model is untrained; the label is set here)
    ex = postprocess(spec, probs, out["cam"][0], out["attention_5"][0], template_points(SIZE))
    assert ex.label == "Happiness" and sorted(r["au"] for r in ex.au_evidence) == [6, 12, 25]
    assert ex.cam.shape == (SIZE, SIZE) and np.isfinite(ex.cam).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["wildcat", "prm", "adl", "cutmix"])
def test_method_exports_verified_without_training_branches(method, tmp_path):
    report, proto = _export(method, tmp_path)
    _check_contract(report, proto, method)
    if method in ("adl", "cutmix"):  # training-only changes: the plain WGAP graph, node for node
        _, cam = _export("cam", tmp_path)
        assert [n.op_type for n in proto.graph.node] == [n.op_type for n in cam.graph.node]
