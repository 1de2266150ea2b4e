"""Verification: the error measure, the inputs, and that a failing check is reported honestly
(file kept but marked unverified, report says why)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aucues.preprocessing import PreprocessConfig
from aucues.export.config import FP32_TOLERANCES, Tolerances

SIZE = 64


def test_compare_absolute_relative_and_cosine():
    from aucues.export.verify import compare

    tol = FP32_TOLERANCES
    a = np.linspace(-1, 1, 100, dtype=np.float32)
    assert compare("x", a, a, tol)["ok"]
    assert compare("x", a, a + 5e-5, tol)["ok"]
    assert not compare("x", a, a + 2e-4, tol)["ok"]
    big = a * 50  # CAM-like magnitudes: the limit scales with the peak
    e = compare("cam", big, big + 2e-3, tol)
    assert e["ok"] and e["limit"] == pytest.approx(5e-3)
    assert not compare("cam", big, big + 1e-2, tol)["ok"]
    # small everywhere but pointing elsewhere: max error within atol, cosine catches it
    tiny = np.full(100, 1e-5, np.float32)
    e = compare("x", tiny, -tiny, tol)
    assert e["max_abs"] < tol.atol and e["cosine"] < 0 and not e["ok"]
    # below the noise floor (rounding noise, e.g. a channel mean after LayerNorm) the direction is
    # meaningless: only the absolute limit applies
    noise = np.random.default_rng(0).standard_normal(100) * 1e-8
    assert compare("x", noise, -noise, tol)["ok"]
    assert not compare("x", noise, noise + 1e-3, tol)["ok"]
    assert compare("z", np.zeros(4), np.zeros(4), tol)["ok"]
    assert not compare("x", a, a[:50], tol)["ok"]
    bad = a.copy()
    bad[3] = np.nan
    assert not compare("x", a, bad, tol)["ok"]


def test_inputs_random_and_real_face():
    from aucues.assets import photo
    from aucues.export.verify import make_inputs

    pre = PreprocessConfig(image_size=48)
    inputs, notes = make_inputs(pre, 3)
    assert set(inputs) == {("random", 1), ("random", 3), ("real", 1), ("real", 3)}
    for (kind, n), x in inputs.items():
        assert x.shape == (n, 3, 48, 48) and x.dtype == np.float32
    photo("Tom_Hanks_54745.png")  # gathered at set-up: the real input is the photo
    assert "Tom_Hanks_54745.png" in notes[0]
    real = inputs[("real", 3)]
    img = pre.denormalize(real[0])
    assert img.std() > 20  # a photo, not a flat image
    np.testing.assert_allclose(real[1], real[0][:, :, ::-1], atol=1e-6)  # its mirror
    np.testing.assert_array_equal(inputs[("real", 1)][0], real[0])


def test_checker_reports_invalid_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from aucues.export.verify import check_model

    graph = helper.make_graph([helper.make_node("Relu", ["nothere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "b.onnx"))
    msg = check_model(tmp_path / "b.onnx")
    assert msg != "ok" and "\n" not in msg


@pytest.fixture(scope="module")
def model():
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=SIZE))


def _assert_marked_unverified(out, rep):
    import onnx

    from aucues.export import read_metadata

    assert out.exists() and not rep.verified and rep.failures
    assert read_metadata(out)["verified"] is False
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["verified"] == "false"
    saved = json.loads(rep.report_file.read_text())
    assert saved["verified"] is False and saved["failures"] == rep.failures
    assert saved["tolerances"] == rep.tolerances and saved["batch_sizes"] == [1, 2]
    assert saved["checker"] == "ok" and saved["file_size_bytes"] == out.stat().st_size
    assert {"export", "verify", "write", "total"} <= set(saved["timings_s"])


def test_zero_tolerance_fails_and_marks_file(model, tmp_path):
    from aucues.export import ExportConfig, export_onnx

    out = tmp_path / "z.onnx"
    rep = export_onnx(model, out, ExportConfig(tolerances=Tolerances(atol=0.0, min_cosine=1.0 + 1e-9), batch=2,
                                               layers=(5,), simplify=False))
    _assert_marked_unverified(out, rep)
    assert rep.tolerances == {"atol": 0.0, "min_cosine": 1.0 + 1e-9, "noise_floor": 1e-6}


def test_perturbed_runtime_output_is_caught(model, tmp_path, monkeypatch):
    """A runtime that gets one output slightly wrong (1e-3 on attention_5 only) must fail exactly there."""
    import aucues.export.verify as verify

    real_session = verify.ort_session

    class Perturbed:
        def __init__(self, sess):
            self.sess = sess

        def get_outputs(self):
            return self.sess.get_outputs()

        def run(self, names, feeds):
            outs = self.sess.run(names, feeds)
            names_all = [o.name for o in self.sess.get_outputs()]
            return [o + 1e-3 if n == "attention_5" else o for n, o in zip(names_all, outs)]

    monkeypatch.setattr(verify, "ort_session", lambda p: Perturbed(real_session(p)))
    from aucues.export import ExportConfig, export_onnx

    out = tmp_path / "p.onnx"
    rep = export_onnx(model, out, ExportConfig(batch=2, layers=(4, 5), simplify=False))
    _assert_marked_unverified(out, rep)
    failing = {e["output"] for e in rep.errors if not e["ok"]}
    assert failing == {"attention_5"}
    assert len(rep.failures) == 4  # random/real x batch 1/2
