"""TensorRT engines: real builds on a GPU machine; without one, clean one-line refusals."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

HAS_GPU = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_gpu = pytest.mark.skipif(not (HAS_GPU and HAS_TRT),
                               reason="needs an NVIDIA GPU and tensorrt (pip install 'aucues[gpu]')")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from aucues.export import ExportConfig, export_onnx
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=64))
    out = tmp_path_factory.mktemp("trt") / "m.onnx"
    rep = export_onnx(model, out, ExportConfig(batch=2, verify=False))
    return out, rep


def test_engine_config_validation():
    from aucues.export.tensorrt_engine import ENGINE_FP16_TOLERANCES, EngineConfig

    for kw in ({"min_batch": 0}, {"min_batch": 4, "opt_batch": 2}, {"opt_batch": 64}, {"workspace_gb": 0}):
        with pytest.raises(AucuesError):
            EngineConfig(**kw)
    assert EngineConfig(fp16=True).resolved_tolerances == ENGINE_FP16_TOLERANCES


def test_registry_lists_both_formats():
    from aucues.export.formats import available_formats, format_for_path, get_format

    assert {"onnx", "tensorrt"} <= set(available_formats())
    assert format_for_path("a/model.plan").name == "tensorrt"
    assert format_for_path("model.onnx").name == "onnx"
    assert get_format("tensorrt").source == "onnx"
    with pytest.raises(AucuesError):
        get_format("tflite")
    with pytest.raises(AucuesError):
        format_for_path("m.xyz")
    ok, why = get_format("tensorrt").available()
    assert ok == (HAS_GPU and HAS_TRT) and (ok or why)


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_import_hint_without_tensorrt():
    from aucues.export.tensorrt_engine import import_tensorrt

    with pytest.raises(AucuesError, match=r"pip install 'aucues\[gpu\]'") as e:
        import_tensorrt()
    assert "\n" not in str(e.value)


@pytest.mark.skipif(HAS_GPU and HAS_TRT, reason="a GPU and tensorrt are present: the engine gets built")
def test_build_refuses_cleanly_without_gpu_or_tensorrt(onnx_model, tmp_path):
    from aucues.export import build_engine

    with pytest.raises(AucuesError) as e:
        build_engine(onnx_model[0], tmp_path / "m.plan")
    msg = str(e.value)
    assert "\n" not in msg and ("GPU" in msg or "TensorRT" in msg)
    assert not (tmp_path / "m.plan").exists()
    # file problems are reported before the GPU question
    with pytest.raises(AucuesError, match="no such file"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "m.plan")


@needs_gpu
def test_engine_build_and_parity(onnx_model, tmp_path):
    import tensorrt as trt

    from aucues.export import EngineConfig, build_engine
    from aucues.export.tensorrt_engine import TrtRunner
    from aucues.export.verify import ort_session

    plan = tmp_path / "m.plan"
    rep = build_engine(onnx_model[0], plan, EngineConfig(min_batch=1, opt_batch=4, max_batch=8, workspace_gb=1))
    assert rep.verified, rep.failures
    assert rep.outputs == onnx_model[1].outputs and rep.batch_sizes == [1, 4]
    assert rep.report_file.name == "m.plan.report.json" and rep.report_file.exists()
    data = plan.read_bytes()  # raw serialized engine, as Triton's tensorrt_plan backend loads it
    runner = TrtRunner(trt, data)
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)  # max batch
    ref = ort_session(onnx_model[0]).run(rep.outputs, {"image": x})
    got = runner.run(x, rep.outputs)
    for r, g in zip(ref, got):
        assert g.shape == r.shape
        assert np.abs(r - g).max() <= 1e-3 * max(1.0, np.abs(r).max())


@needs_gpu
def test_engine_fp16(onnx_model, tmp_path):
    from aucues.export import EngineConfig, build_engine

    rep = build_engine(onnx_model[0], tmp_path / "h.plan", EngineConfig(fp16=True, opt_batch=2, max_batch=4))
    assert rep.verified, rep.failures
