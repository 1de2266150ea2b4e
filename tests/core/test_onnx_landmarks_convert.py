"""The converted ONNX landmark models against the TFLite models themselves (LiteRT's interpreter)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import skip_unless_ci

from aucues.errors import AucuesError
from aucues.io import read_image
from aucues.onnx_landmarks import models

# Raw outputs (box regressors in input px, score logits, mesh coordinates in 192 px) reach ~200 in
# magnitude; fp32 kernels of two runtimes differ by ~1e-4 there. 2e-3 absolute is 1e-5 relative.
ATOL = 2e-3
INPUT_RANGE = {"face_detection_short_range": (-1.0, 1.0), "face_detection_full_range": (-1.0, 1.0),
               "face_landmark": (0.0, 1.0)}  # MediaPipe's graphs feed [-1, 1] / [0, 1] tensors


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_lmk")


@pytest.mark.parametrize("name", sorted(models.TFLITE))
def test_onnx_matches_tflite(name, cache, astronaut_path):
    try:
        from ai_edge_litert import interpreter
    except ImportError as e:  # the test extra installs it; CI must not skip silently
        skip_unless_ci(f"ai-edge-litert (TFLite interpreter) absent: {e}")
    import onnxruntime as ort

    path = models.onnx_path(name, cache)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    it = interpreter.Interpreter(model_path=str(models.tflite_path(name)))
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()
    side = int(inp["shape"][1])
    lo, hi = INPUT_RANGE[name]
    # A real photo (the astronaut's face region) and two random tensors, as one batch of 3.
    face = cv2.resize(read_image(astronaut_path)[20:260, 120:360], (side, side)).astype(np.float32)
    rng = np.random.default_rng(0)
    x = np.stack([lo + face / 255.0 * (hi - lo)] + [rng.uniform(lo, hi, (side, side, 3)) for _ in range(2)])
    x = x.astype(np.float32)
    got = sess.run([o["name"] for o in outs], {inp["name"]: x})
    for b in range(3):
        it.set_tensor(inp["index"], x[b:b + 1])
        it.invoke()
        for j, o in enumerate(outs):
            ref = it.get_tensor(o["index"])
            assert got[j][b:b + 1].shape == ref.shape
            err = float(np.abs(got[j][b:b + 1] - ref).max())
            assert err <= ATOL, f"{name} {o['name']} sample {b}: max |onnx - tflite| = {err}"


def test_cache_is_reused_and_named_by_content(cache):
    p = models.onnx_path("face_landmark", cache)
    mtime = p.stat().st_mtime_ns
    assert models.onnx_path("face_landmark", cache) == p and p.stat().st_mtime_ns == mtime
    assert not [f for f in p.parent.iterdir() if f.name.endswith(".tmp")]


def test_unreadable_tflite_is_one_line_error():
    from aucues.onnx_landmarks.convert import tflite_to_onnx

    with pytest.raises(AucuesError):
        tflite_to_onnx(b"not a flatbuffer at all")


def test_unwritable_cache_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AucuesError, match="AUCUES_ASSETS"):
        models.onnx_path("face_landmark", blocker / "sub")


@pytest.mark.parametrize("name", sorted(models.IO))
def test_io_table_matches_the_converted_models(name, cache):
    """models.IO (what the served configs and the BLS runner use) names the ONNX model's real tensors."""
    import onnx

    g = onnx.load(str(models.onnx_path(name, cache))).graph
    in_name, out_names, in_shape, out_shapes = models.IO[name]
    dims = lambda v: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [i.name for i in g.input] == [in_name] and dims(g.input[0]) == ["N", *in_shape]
    assert [o.name for o in g.output] == list(out_names)
    assert [dims(o) for o in g.output] == [["N", *s] for s in out_shapes]
