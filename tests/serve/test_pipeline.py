"""The in-process stages the Triton Python models run: header sniffing, postprocess semantics
(Neutral has no AU map -> NaN score, no evidence), and the overlay picture."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from aucues.au_regions import template_points
from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.serve.pipeline import interpretability_score, postprocess, sniff_image, unit_map
from aucues.serve.spec import ModelSpec

SPEC = ModelSpec(preprocess=PreprocessConfig(image_size=96), layers={5: (12, 12)}, cam_size=(12, 12))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_sniff_reads_format_and_size(ext):
    img = np.zeros((37, 53, 3), np.uint8)
    buf = cv2.imencode(ext, img)[1].tobytes()
    fmt, w, h = sniff_image(buf)
    assert fmt == {".jpg": "jpeg", ".png": "png", ".bmp": "bmp", ".webp": "webp"}[ext]
    assert (w, h) == (53, 37)
    with pytest.raises(AucuesError, match="supported format"):
        sniff_image(b"%PDF-1.7 ...")


def _outputs(pred: int):
    probs = np.full(7, 0.05, np.float32)
    probs[pred] = 0.7
    rng = np.random.default_rng(0)
    return probs, rng.normal(size=(7, 12, 12)).astype(np.float32), rng.normal(size=(12, 12)).astype(np.float32)


def test_postprocess_expression_and_neutral():
    pts = template_points(96)
    probs, cam, att = _outputs(1)  # Happiness: AU6, AU12, AU25
    ex = postprocess(SPEC, probs, cam, att, pts)
    assert ex.label == "Happiness" and ex.topk[0] == "Happiness" and len(ex.topk) == 3
    assert sorted(r["au"] for r in ex.au_evidence) == [6, 12, 25]
    assert 0 <= ex.interpretability_score <= 1
    assert ex.cam.shape == (96, 96) and 0 <= ex.cam.min() and ex.cam.max() <= 1
    probs, cam, att = _outputs(0)  # Neutral: no AU map
    ex = postprocess(SPEC, probs, cam, att, pts)
    assert ex.label == "Neutral" and ex.au_evidence == [] and math.isnan(ex.interpretability_score)


def test_interpretability_prefers_attention_on_the_aus():
    from aucues.au_maps import au_map

    pts = template_points(96)
    amap, ok = au_map(pts, 1, 96)
    assert ok
    on = interpretability_score(cv2.resize(amap, (12, 12), interpolation=cv2.INTER_AREA), pts, 1, 96)
    off = interpretability_score(1 - cv2.resize(amap, (12, 12), interpolation=cv2.INTER_AREA), pts, 1, 96)
    assert on > 0.9 > off
    assert unit_map(np.zeros((12, 12)), 96).max() == 0  # a flat map stays zeros, no NaN


def test_overlay_picture():
    from aucues.serve.overlay import render_overlay

    pts = template_points(96)
    probs, cam, att = _outputs(1)
    ex = postprocess(SPEC, probs, cam, att, pts)
    face = np.full((96, 96, 3), 128, np.uint8)
    result = {"label": ex.label, "probabilities": dict(zip(SPEC.class_names, map(float, probs))),
              "interpretability_score": ex.interpretability_score, "au_evidence": ex.au_evidence}
    img = render_overlay(face, ex.cam, ex.attention, pts, result, ex.class_index)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[1] >= 2 * 320
    result.update(interpretability_score=None, au_evidence=[])
    assert render_overlay(face, ex.cam, ex.attention, pts, result, 0).shape[1] == img.shape[1]


def test_model_is_served_on_its_own_template(tmp_path, lm, astronaut_path):
    """A checkpoint made with a non-default alignment template is exported and served (in-process
    pipeline) on that template's crop, not the default one."""
    import torch

    from aucues.align import LEGACY_TEMPLATE, align_face
    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx
    from aucues.io import read_image
    from aucues.serve.pipeline import Pipeline
    from aucues.train.checkpoint import load_checkpoint, save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    pre = PreprocessConfig(image_size=64).with_template(LEGACY_TEMPLATE)
    model = build_model(ModelConfig(backbone="resnet18", weights="random", attention_layers=(5,)), pre)
    ck = tmp_path / "legacy.pt"
    save_checkpoint(ck, model)
    assert load_checkpoint(ck)[0].preprocess.template == LEGACY_TEMPLATE
    onnx = tmp_path / "legacy.onnx"
    export_onnx(ck, onnx, ExportConfig(verify=False, write_report=False))
    p = Pipeline(onnx, landmarker=lm)  # the session's landmarker: not closed here
    assert p.spec.preprocess.template == LEGACY_TEMPLATE
    data = astronaut_path.read_bytes()
    got = p.preprocessor(data)
    out = p.predict(data)
    rgb = read_image(astronaut_path)
    pts = lm.detect(rgb)[0].points
    legacy, default = align_face(rgb, pts, 64, LEGACY_TEMPLATE), align_face(rgb, pts, 64)
    np.testing.assert_allclose(got.landmarks, legacy.points, atol=0.5)
    assert np.abs(got.landmarks - default.points).max() > 5  # the two crops really differ
    assert out["label"] in SPEC.class_names
