"""Bad input never takes the server down: each bad request gets its own clear error while good
requests sent at the same moment (sharing dynamic batches) get their right answers; odd but valid
images (grayscale, RGBA, 16-bit, BMP, WebP) are answered."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from aucues.io import read_image
from aucues.serve.client import AucuesClient, PredictError


def _enc(ext, img, *params):
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def inputs(astronaut_path):
    rgb = read_image(astronaut_path)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    jpeg = _enc(".jpg", bgr, cv2.IMWRITE_JPEG_QUALITY, 95)
    tiny_png = _enc(".png", np.zeros((1, 1, 3), np.uint8))
    huge = bytearray(tiny_png)
    huge[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # header says 900 MP
    bad = {
        "empty": (b"", "empty"),
        "truncated jpeg": (jpeg[: len(jpeg) // 3], "not a decodable image"),
        "text file": (b"name,label\nface.jpg,happy\n" * 20, "not an image"),
        "no face": (_enc(".png", np.full((240, 320, 3), 90, np.uint8)), "no face"),
        "1x1": (tiny_png, "no face"),
        "huge header": (bytes(huge), "pixel limit"),
        "gif": (b"GIF89a" + b"\0" * 100, "not an image"),
    }
    odd = {
        "gray": _enc(".jpg", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.IMWRITE_JPEG_QUALITY, 95),
        "rgba": _enc(".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)),
        "16-bit": _enc(".png", bgr.astype(np.uint16) * 257),
        "bmp": _enc(".bmp", bgr),
        "webp": _enc(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 101),
    }
    return astronaut_path.read_bytes(), bad, odd


def _call(url, data):
    with AucuesClient(url, "http") as c:
        try:
            return c.predict(data).result
        except PredictError as e:
            return e


def test_bad_inputs_concurrent_with_good(triton, inputs):
    good, bad, odd = inputs
    with AucuesClient(triton.http_url) as c:
        reference = c.predict(good).result
    stats0 = _preprocess_counts(triton)
    jobs = [("good", good)] * 6 + [(k, v[0]) for k, v in bad.items()] + list(odd.items()) + [("good", good)] * 6
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda j: _call(triton.http_url, j[1]), jobs))
    for (name, _), res in zip(jobs, results):
        if name in bad:
            assert isinstance(res, PredictError), f"{name}: expected an error, got {res}"
            assert bad[name][1] in str(res), f"{name}: {res}"
            assert "\n" not in str(res)
        else:
            assert isinstance(res, dict), f"{name}: {res}"
            assert res["num_faces"] == 1
    by_name = dict(zip([j[0] for j in jobs], results))
    for name in ("good", "rgba", "16-bit", "bmp"):  # same pixels -> the same answer
        np.testing.assert_allclose(list(by_name[name]["probabilities"].values()),
                                   list(reference["probabilities"].values()), atol=1e-5)
    assert by_name["gray"]["label"] in reference["probabilities"]
    assert triton.is_ready()
    # The requests really shared batches: fewer preprocess executions than requests.
    inferences, executions = (b - a for a, b in zip(stats0, _preprocess_counts(triton)))
    assert inferences == len(jobs) and executions < inferences


def _preprocess_counts(triton):
    import tritonclient.http as th

    with th.InferenceServerClient(triton.http_url) as c:
        st = c.get_inference_statistics("preprocess")["model_stats"][0]
    return st["inference_count"], st["execution_count"]


def test_wrong_dtype_and_shape(triton, astronaut_bytes):
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    with th.InferenceServerClient(triton.http_url) as c:
        x = th.InferInput("image_bytes", [1, 16], "FP32")
        x.set_data_from_numpy(np.zeros((1, 16), np.float32))
        with pytest.raises(InferenceServerException, match="(?i)data.?type|datatype"):
            c.infer("aucues", [x])
        y = th.InferInput("image_bytes", [1, 2, 8], "UINT8")
        y.set_data_from_numpy(np.zeros((1, 2, 8), np.uint8))
        with pytest.raises(InferenceServerException, match="(?i)shape|dims"):
            c.infer("aucues", [y])
        z = th.InferInput("wrong_name", [1, 8], "UINT8")
        z.set_data_from_numpy(np.zeros((1, 8), np.uint8))
        with pytest.raises(InferenceServerException):
            c.infer("aucues", [z])
        # a batch of two same-length rows in one request is fine too
        arr = np.frombuffer(astronaut_bytes, np.uint8)
        two = th.InferInput("image_bytes", [2, arr.size], "UINT8")
        two.set_data_from_numpy(np.stack([arr, arr]))
        res = c.infer("aucues", [two], outputs=[th.InferRequestedOutput("label")])
        assert res.as_numpy("label").shape == (2, 1)
    assert triton.is_ready()


def test_in_process_checks_are_fast_and_clear():
    from aucues.errors import AucuesError
    from aucues.serve.pipeline import check_encoded

    for data, msg in ((b"", "empty"), (np.zeros((2, 2), np.uint8), "flat"), (np.zeros(4, np.float32), "UINT8"),
                      (b"BM" + b"\0" * 16 + (40000).to_bytes(4, "little") * 2, "pixel limit")):
        with pytest.raises(AucuesError, match=msg):
            check_encoded(data)
