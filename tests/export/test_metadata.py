"""The `aucues` metadata contract inside exported ONNX files (Triton reads the same key)."""

from __future__ import annotations

import json

import pytest

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig


def _tiny_onnx(path, meta=None, raw_props=None):
    """A one-node ONNX model (no torch) to test the metadata functions alone."""
    import onnx
    from onnx import TensorProto, helper

    from aucues.export.metadata import set_metadata

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 7])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if meta is not None:
        set_metadata(model, meta)
    for k, v in (raw_props or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))
    return path


def _meta(**over):
    from aucues.export.metadata import build_metadata

    kw = dict(preprocess=PreprocessConfig(image_size=96, codebook="reference"), model_config={"backbone": "x"},
              outputs=["logits"], layers={5: (12, 12)}, cam_size=(12, 12), au={"lambda": 9.0},
              checkpoint_sha256="ab" * 32, exporter="dynamo", opset=18, verified=True)
    kw.update(over)
    return build_metadata(**kw)


def test_round_trip_without_torch(tmp_path):
    from aucues.export.metadata import METADATA_FORMAT, read_metadata, preprocess_from_onnx

    path = _tiny_onnx(tmp_path / "t.onnx", _meta())
    meta = read_metadata(path)
    assert meta["format"] == METADATA_FORMAT
    assert meta["layers"] == {"5": [12, 12]} and meta["cam_size"] == [12, 12]
    assert meta["au"] == {"lambda": 9.0} and meta["verified"] is True
    assert preprocess_from_onnx(path) == PreprocessConfig(image_size=96, codebook="reference")
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["class_names"] == "Neutral,Happiness,Surprise,Fear,Anger,Disgust,Sadness"
    assert props["image_size"] == "96" and props["verified"] == "true"


def test_set_metadata_replaces_not_duplicates(tmp_path):
    import onnx

    from aucues.export.metadata import set_metadata

    path = _tiny_onnx(tmp_path / "t.onnx", _meta(verified=False), raw_props={"other": "kept"})
    model = onnx.load(str(path))
    set_metadata(model, _meta(verified=True))
    keys = [p.key for p in model.metadata_props]
    assert sorted(keys) == sorted(set(keys)) and "other" in keys and keys.count("aucues") == 1
    assert json.loads({p.key: p.value for p in model.metadata_props}["aucues"])["verified"] is True


def test_errors_are_one_line(tmp_path):
    from aucues.export.metadata import read_metadata

    cases = {
        "missing": tmp_path / "nope.onnx",
        "garbage": tmp_path / "garbage.onnx",
        "foreign": _tiny_onnx(tmp_path / "foreign.onnx"),
        "badjson": _tiny_onnx(tmp_path / "badjson.onnx", raw_props={"aucues": "{not json"}),
        "format": _tiny_onnx(tmp_path / "format.onnx", raw_props={"aucues": json.dumps({"format": "x/9"})}),
    }
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    for name, path in cases.items():
        with pytest.raises(AucuesError) as e:
            read_metadata(path)
        assert "\n" not in str(e.value), name
    with pytest.raises(AucuesError, match="no such file"):
        read_metadata(cases["missing"])
    with pytest.raises(AucuesError, match="no 'aucues' metadata"):
        read_metadata(cases["foreign"])


def test_exported_model_round_trip(tmp_path):
    """Checkpoint -> ONNX: preprocess equals the checkpoint's, AU settings and hash recorded."""
    import torch

    from aucues.export import ExportConfig, export_onnx, preprocess_from_onnx, read_metadata
    from aucues.train.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    pre = PreprocessConfig(image_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), codebook="reference")
    model = build_model(ModelConfig(backbone="resnet18", large_maps=False), pre)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, {"train_config": {"au_loss": True, "au_layers": [4, 5], "au_lambda": 4.0,
                                                   "codebook": "reference", "epochs": 3}})
    out = tmp_path / "m.onnx"
    rep = export_onnx(ckpt, out, ExportConfig(exporter="torchscript", batch=2, simplify=False))
    assert rep.verified, rep.failures
    loaded, _ = load_checkpoint(ckpt)
    assert preprocess_from_onnx(out) == loaded.preprocess
    meta = read_metadata(out)
    assert meta["checkpoint_sha256"] == checkpoint_sha256(ckpt)
    assert meta["au"] == {"loss": True, "layers": [4, 5], "lambda": 4.0, "codebook": "reference"}
    assert meta["model_config"] == loaded.config.to_dict()
    assert meta["outputs"] == rep.outputs and meta["exporter"] == "torchscript" and meta["opset"] == 18
    shapes = loaded.layer_shapes(64)
    assert meta["layers"] == {str(k): list(shapes[k]) for k in range(1, 6)}
    assert meta["cam_size"] == list(shapes[5]) == [2, 2]  # no large maps: stride 32
    assert meta["verified"] is True and meta["simplified"] is False and meta["fp16"] is False
    assert meta["aucues_version"]


def test_template_in_metadata_and_old_files_keep_theirs(tmp_path):
    """The alignment template travels in the ONNX metadata; files exported before the template keys
    existed are read (and served) with the template they were made with."""
    from aucues.align import LEGACY_TEMPLATE, REFERENCE_TEMPLATE
    from aucues.export.metadata import preprocess_from_onnx, read_metadata
    from aucues.serve.spec import ModelSpec

    new = _tiny_onnx(tmp_path / "new.onnx", _meta())
    assert read_metadata(new)["preprocess"]["align_template_size"] == 112.0
    assert preprocess_from_onnx(new).template == REFERENCE_TEMPLATE
    old_meta = _meta()
    for k in ("align_template", "align_template_size", "align_level_eyes"):
        del old_meta["preprocess"][k]
    old = _tiny_onnx(tmp_path / "old.onnx", old_meta)
    assert preprocess_from_onnx(old).template == LEGACY_TEMPLATE
    assert ModelSpec.from_metadata(read_metadata(old)).preprocess.template == LEGACY_TEMPLATE
