"""`repository build --landmarker onnx`: the detector and mesh served as batched Triton models that the
preprocess calls by BLS, on a real tritonserver; faces and landmarks as MediaPipe finds them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import skip_unless_ci


@pytest.fixture(scope="module")
def onnx_lmk_repo(tiny_onnx, tmp_path_factory):
    from aucues.serve.repository import build_repository

    out = tmp_path_factory.mktemp("serve_repo_lmk") / "repo"
    report = build_repository(out, onnx=tiny_onnx, backend="python", max_batch=8, instances=1,
                              landmarker="onnx")
    return out, report


def test_repository_layout(onnx_lmk_repo):
    from aucues.serve.pbtxt import read_config

    out, report = onnx_lmk_repo
    assert report["landmarker"] == "onnx"
    for name in ("face_detection_short_range", "face_detection_full_range", "face_landmark"):
        assert name in report["models"]
        assert (out / name / "1" / "model.onnx").is_file() and (out / name / "1" / "model.py").is_file()
        cfg = read_config(out / name / "config.pbtxt")
        assert cfg.max_batch_size >= 8 and cfg.dynamic_batching is not None
    pre = read_config(out / "preprocess" / "config.pbtxt")
    assert pre.parameters["landmarker"].string_value == "onnx"


def test_onnx_platform_for_gpu_hosts(tiny_onnx, tmp_path):
    from aucues.serve.landmark_repo import landmark_message
    from aucues.serve.pbtxt import RepoOptions

    cfg = landmark_message("face_landmark", RepoOptions(backend="onnxruntime", trt_accelerator=True))
    assert cfg.platform == "onnxruntime_onnx" and cfg.default_model_filename == "model.onnx"
    assert [o.name for o in cfg.output] == ["conv2d_21", "conv2d_31"]


@pytest.mark.slow  # its own tritonserver with 9 models: ~50 s here
def test_served_landmarks_match_mediapipe(onnx_lmk_repo, pipeline, astronaut_bytes, six_faces_path):
    from aucues.errors import AucuesError
    from aucues.serve.client import AucuesClient
    from aucues.serve.tritonserver import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    server = TritonServer(onnx_lmk_repo[0])
    server.start(timeout=180)
    try:
        with AucuesClient(server.http_url, "http") as client:
            client.check_ready()
            for data in (astronaut_bytes, six_faces_path.read_bytes()):
                res = client.predict(data, maps=False).result
                ref = pipeline.preprocessor(data)  # the session's MediaPipe pipeline
                assert res["num_faces"] == ref.num_faces
                got = np.asarray(res["landmarks"], np.float32)
                iod = np.linalg.norm(ref.landmarks[36] - ref.landmarks[45])
                assert np.linalg.norm(got - ref.landmarks, axis=1).mean() <= 0.01 * iod
                np.testing.assert_allclose(res["face_box"], ref.face_box, atol=1.0)
        # The faces came from the served models (not a MediaPipe fallback inside preprocess).
        import tritonclient.http as httpclient

        stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics()
        counts = {m["name"]: int(m["inference_count"]) for m in stats["model_stats"]}
        # 2 images: the mesh ran on 1 + 6 faces; the full-range detector on 1 + 13 tiles/images
        assert counts["face_landmark"] >= 7 and counts["face_detection_full_range"] >= 14
    finally:
        assert server.stop() == 0, server.last_log
