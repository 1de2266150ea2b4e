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
