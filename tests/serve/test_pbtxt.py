"""config.pbtxt generation: valid Triton ModelConfig protobuf text, shapes from the spec, and the
checked-in model_repository/ configs equal a fresh generation for the default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.serve.pbtxt import RepoOptions, all_configs, classifier_config, labels_text
from aucues.serve.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]


def _spec(size=96, layers=None, names=None):
    pre = PreprocessConfig(image_size=size, **({"class_names": names} if names else {}))
    layers = layers or {1: (48, 48), 2: (24, 24), 3: (12, 12), 4: (12, 12), 5: (12, 12)}
    return ModelSpec(preprocess=pre, layers=layers, cam_size=layers[max(layers)])


def _parse(text):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_configs_are_valid_model_config_protobuf():
    spec = _spec()
    for backend in ("python", "onnxruntime", "tensorrt"):
        cfgs = {k: _parse(v) for k, v in all_configs(spec, RepoOptions(backend=backend, instances=2)).items()}
        cls = cfgs["classifier"]
        assert [i.name for i in cls.input] == ["image"] and list(cls.input[0].dims) == [3, 96, 96]
        outs = {o.name: list(o.dims) for o in cls.output}
        assert outs["cam"] == [7, 12, 12] and outs["attention_1"] == [48, 48] and outs["probabilities"] == [7]
        assert cls.instance_group[0].count == 2
        assert list(cls.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
        if backend == "python":
            assert cls.backend == "python" and cls.parameters["model_file"].string_value == "model.onnx"
        elif backend == "onnxruntime":
            assert cls.platform == "onnxruntime_onnx"
        else:
            assert cls.platform == "tensorrt_plan" and cls.default_model_filename == "model.plan"
        pre = cfgs["preprocess"]
        assert pre.input[0].allow_ragged_batch and list(pre.input[0].dims) == [-1]
        assert ModelSpec.from_json(pre.parameters["aucues"].string_value) == spec
        ens = cfgs["aucues"]
        assert ens.platform == "ensemble"
        assert [s.model_name for s in ens.ensemble_scheduling.step] == ["preprocess", "classifier", "postprocess"]
        # every ensemble output is produced by some step
        produced = {v for s in ens.ensemble_scheduling.step for v in s.output_map.values()}
        assert {o.name for o in ens.output} <= produced


def test_trt_accelerator_block():
    cfg = _parse(classifier_config(_spec(), RepoOptions(backend="onnxruntime", trt_accelerator=True)))
    acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"


def test_labels_and_custom_classes():
    spec = _spec(names=("calm", "joy", 'say "hi"'))
    assert labels_text(spec) == 'calm\njoy\nsay "hi"\n'
    cfg = _parse(all_configs(spec, RepoOptions())["postprocess"])
    # the JSON parameter survives protobuf string escaping
    assert ModelSpec.from_json(cfg.parameters["aucues"].string_value).class_names == ("calm", "joy", 'say "hi"')
    assert [list(o.dims) for o in cfg.output if o.name == "topk"] == [[3]]


def test_options_are_checked():
    with pytest.raises(AucuesError, match="backend"):
        RepoOptions(backend="tflite")
    with pytest.raises(AucuesError, match="instances"):
        RepoOptions(instances=0)
    with pytest.raises(AucuesError, match="max-batch"):
        RepoOptions(max_batch=0)
    assert RepoOptions(max_batch=6).preferred_batch_sizes == [4, 6]
    assert RepoOptions(max_batch=1).preferred_batch_sizes == [1]


def test_checked_in_repository_matches_generation():
    """model_repository/ holds the configs of the default model (ResNet50, 224 px, 7 classes, layers
    1-5); regenerate with `python -m aucues.serve.repository` whenever generation or the defaults change."""
    from aucues.serve.repository import default_spec, reference_files

    spec = default_spec()
    assert spec.image_size == PreprocessConfig().image_size and spec.num_classes == 7
    assert sorted(spec.layers) == [1, 2, 3, 4, 5]
    for rel, text in reference_files(spec).items():
        path = ROOT / "model_repository" / rel
        assert path.exists(), f"{rel} missing: run python -m aucues.serve.repository"
        assert path.read_text() == text, f"{rel} differs from a fresh generation: run python -m aucues.serve.repository"



def test_classifier_dynamic_batching_switch():
    on = _parse(classifier_config(_spec(), RepoOptions()))
    off = _parse(classifier_config(_spec(), RepoOptions(dynamic_batching=False)))
    assert on.HasField("dynamic_batching") and list(on.dynamic_batching.preferred_batch_size)
    assert not off.HasField("dynamic_batching")
    assert off.max_batch_size == on.max_batch_size  # still batches what the client sends


def test_configs_round_trip_through_protobuf(tmp_path):
    """Generated text is exactly protobuf's text format of the message it parses back to."""
    from aucues.serve.pbtxt import parse_config, read_config, spec_parameter, to_text

    spec = _spec()
    for name, text in all_configs(spec, RepoOptions(backend="onnxruntime", trt_accelerator=True)).items():
        assert to_text(parse_config(text)) == text, name
    ens = tmp_path / "config.pbtxt"
    ens.write_text(all_configs(spec, RepoOptions())["aucues"])
    assert spec_parameter(read_config(ens)) == spec
    ens.write_text('name: "aucues"\nplatform: "ensemble"\n')
    with pytest.raises(AucuesError, match="no aucues parameter"):
        spec_parameter(read_config(ens), str(ens))
    ens.write_text("name: aucues {{\n")
    with pytest.raises(AucuesError, match="not a valid Triton model config") as e:
        read_config(ens)
    assert "\n" not in str(e.value)
