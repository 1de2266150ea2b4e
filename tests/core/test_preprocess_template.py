"""The alignment template as PreprocessConfig fields: the reference template by default, saved and
read back, and configs written before the fields existed keep the template they were made with."""

import json

import numpy as np
import pytest

from aucues.align import LEGACY_TEMPLATE, REFERENCE_TEMPLATE
from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

# A PreprocessConfig dict exactly as checkpoints and ONNX files stored it before the template keys.
OLD_STYLE = {
    "image_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    "class_names": ["Neutral", "Happiness", "Surprise", "Fear", "Anger", "Disgust", "Sadness"],
    "attention_layers": [1, 2, 3, 4, 5], "codebook": "paper", "interpolation": "bilinear", "extra": {},
    "channels": 3, "crop": "five_point",
}


def test_default_is_the_reference_template():
    pp = PreprocessConfig()
    assert pp.template == REFERENCE_TEMPLATE
    t = pp.template_points()  # at image_size 224: ArcFace's 112 template x 2
    np.testing.assert_allclose(t[0], (76.5892, 103.3926), atol=1e-4)
    np.testing.assert_allclose(t[1], (147.0636, 103.0028), atol=1e-4)
    assert t[0, 0] < t[1, 0]  # image-left eye first, as five_points
    assert abs(t[:2, 1].mean() / 224 - 0.46) < 0.005  # eye line at 46% of the height
    assert pp.align_level_eyes is False


def test_round_trip_json_and_dict():
    pp = PreprocessConfig(image_size=96).with_template(LEGACY_TEMPLATE)
    d = json.loads(pp.to_json())
    assert d["align_template_size"] == 1.0 and d["align_level_eyes"] is True and len(d["align_template"]) == 5
    assert PreprocessConfig.from_json(pp.to_json()) == pp
    assert PreprocessConfig.from_dict(PreprocessConfig().to_dict()) == PreprocessConfig()


def test_old_style_dict_keeps_its_legacy_template():
    pp = PreprocessConfig.from_dict(dict(OLD_STYLE))
    assert pp.template == LEGACY_TEMPLATE
    np.testing.assert_allclose(pp.template_points(224), [[224 / 3, 0.26 * 224], [2 * 224 / 3, 0.26 * 224],
                                                          [112, 0.46 * 224], [0.35 * 224, 0.63 * 224],
                                                          [0.65 * 224, 0.63 * 224]], atol=1e-9)
    # once re-saved, it stays legacy (the keys are now written)
    assert PreprocessConfig.from_json(pp.to_json()).template == LEGACY_TEMPLATE


def test_bad_template_values_are_one_line_errors():
    d = PreprocessConfig().to_dict()
    for key, bad in (("align_template", [[0, 0]] * 4), ("align_template", "arcface"),
                     ("align_template_size", 0), ("align_template_size", -112.0), ("align_level_eyes", "no")):
        with pytest.raises(AucuesError) as e:
            PreprocessConfig.from_dict({**d, key: bad})
        assert "\n" not in str(e.value)
