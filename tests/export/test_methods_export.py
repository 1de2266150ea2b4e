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


@pytest.mark.slow
@pytest.mark.parametrize("method", ["wildcat", "prm", "adl", "cutmix"])
def test_method_exports_verified_without_training_branches(method, tmp_path):
    report, proto = _export(method, tmp_path)
    _check_contract(report, proto, method)
    if method in ("adl", "cutmix"):  # training-only changes: the plain WGAP graph, node for node
        _, cam = _export("cam", tmp_path)
        assert [n.op_type for n in proto.graph.node] == [n.op_type for n in cam.graph.node]
