"""The in-process serve pipeline with the ONNX landmarker: same face, same prediction as MediaPipe's."""

from __future__ import annotations

import numpy as np
import pytest


def test_pipeline_onnx_landmarker_matches_mediapipe(tiny_onnx, pipeline, astronaut_bytes):
    from aucues.serve.pipeline import Pipeline

    ref = pipeline.predict(astronaut_bytes)  # the session's MediaPipe pipeline
    p = Pipeline(tiny_onnx, landmarker="onnx")
    try:
        got = p.predict(astronaut_bytes)
    finally:
        p.close()
    assert got["num_faces"] == ref["num_faces"] == 1
    lr, lg = np.array(ref["landmarks"]), np.array(got["landmarks"])
    # In the aligned crop, 1% of the outer-eye span (the parity bar) is well under a pixel.
    assert np.linalg.norm(lr - lg, axis=1).mean() <= 0.01 * np.linalg.norm(lr[36] - lr[45])
    assert got["label"] == ref["label"]
    np.testing.assert_allclose(got["face_box"], ref["face_box"], atol=1.0)


def test_unknown_landmarker_kind(tiny_onnx):
    from aucues.errors import AucuesError
    from aucues.serve.pipeline import Pipeline

    with pytest.raises(AucuesError, match="unknown landmarker"):
        Pipeline(tiny_onnx, landmarker="dlib")


def test_serve_bench_config_checks_landmarker():
    from aucues.errors import AucuesError
    from aucues.serve.bench import ServeBenchConfig

    assert ServeBenchConfig(landmarker="onnx").landmarker == "onnx"
    with pytest.raises(AucuesError, match="unknown landmarker"):
        ServeBenchConfig(landmarker="dlib")


@pytest.mark.parametrize("kind", ["onnx", "mediapipe"])
def test_preprocessor_many_equals_one_by_one(tiny_onnx, astronaut_bytes, six_faces_path, kind):
    """Preprocessor.many (what the Triton preprocess runs over a dynamic batch): per item the same
    result as __call__, and a bad item is that item's exception only."""
    from aucues.errors import AucuesError
    from aucues.serve.pipeline import Preprocessor
    from aucues.serve.spec import spec_from_onnx

    pre = Preprocessor(spec_from_onnx(tiny_onnx), kind)
    try:
        items = [astronaut_bytes, b"not an image", six_faces_path.read_bytes()]
        many = pre.many(items)
        assert isinstance(many[1], AucuesError)
        for k in (0, 2):
            one = pre(items[k])
            assert many[k].num_faces == one.num_faces
            np.testing.assert_allclose(many[k].landmarks, one.landmarks, atol=1e-3)
            np.testing.assert_allclose(many[k].face_box, one.face_box, atol=1e-3)
    finally:
        pre.close()
