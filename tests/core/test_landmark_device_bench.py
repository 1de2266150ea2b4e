"""`aucues bench landmarks` (aucues/onnx_landmarks/device_bench.py) on this CPU machine: the CPU row is
measured against itself, a provider this onnxruntime lacks is skipped with its reason, and a provider
that ONNX Runtime silently replaces by the CPU is reported as a fallback and never timed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aucues.landmarks import Face
from aucues.onnx_landmarks import device_bench as db


def _face(points, score=0.9):
    pts = np.asarray(points, np.float32)
    return Face(box=np.r_[pts.min(0), pts.max(0)].astype(np.float32), points=pts, score=score)


def test_face_parity_measures_the_shift_in_outer_eye_spans():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (68, 2))
    pts[36], pts[45] = (20, 50), (80, 50)  # outer-eye span 60 px
    ref = [_face(pts), _face(pts + 300)]
    got = [_face(pts + 300 + (0, 3)), _face(pts + (1.2, 0))]  # other order, shifted 3 px and 1.2 px
    r = db.face_parity(ref, got)
    assert r["same_faces"] and r["mean_dist_rel"] == pytest.approx(3 / 60, abs=1e-4)
    assert [m[:2] for m in r["matches"]] == [(0, 1), (1, 0)]
    assert r["matches"][0][2] == pytest.approx(1.2 / 60, abs=1e-4)
    assert not db.face_parity(ref, got[:1])["same_faces"]
    assert not db.face_parity([_face(pts), _face(pts + 1)], [_face(pts), _face(pts + 300)])["same_faces"]


def test_tensorrt_provider_list_has_one_batch_profile_per_network(tmp_path):
    lists = db.provider_lists("tensorrt", 64, tmp_path / "cache")
    assert set(lists) == {"face_detection_short_range", "face_detection_full_range", "face_landmark"}
    name, opts = lists["face_landmark"][0]
    assert name == "TensorrtExecutionProvider" and opts["trt_fp16_enable"]
    assert opts["trt_profile_min_shapes"] == "input_1:1x192x192x3"
    assert opts["trt_profile_max_shapes"] == "input_1:64x192x192x3"
    assert lists["face_landmark"][1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert (tmp_path / "cache").is_dir()


def test_cli_measures_cpu_and_skips_what_is_missing(cli, tmp_path, astronaut_path, aligned_face_path):
    import onnxruntime as ort

    code, out = cli("bench", "landmarks", astronaut_path, aligned_face_path, "--providers", "cpu,cuda",
                    "--batch-sizes", "1,2", "--runs", "2", "--out", tmp_path)
    assert code == 0, out
    p = json.loads((tmp_path / "landmarks.json").read_text())
    status = {r["provider"]: r["status"] for r in p["providers"]}
    assert status["cpu"] == "ok"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert status["cuda"].startswith("skipped: CUDAExecutionProvider is not in this onnxruntime")
    cpu_lat = [r for r in p["latency"] if r["provider"] == "cpu"]
    assert {(r["model"], r["batch"]) for r in cpu_lat} == {(m, b) for m in db.provider_lists("cpu", 2, tmp_path)
                                                           for b in (1, 2)}
    assert all(r["p50_ms"] > 0 for r in cpu_lat)
    marks = [r for r in p["landmarks"] if r["provider"] == "cpu"]
    assert [r["image"] for r in marks] == [astronaut_path.name, aligned_face_path.name]
    assert all(r["same_faces"] and r["faces"] == 1 and r["mean_dist_rel"] == 0 for r in marks)
    assert p["parity_ok"] and "parity: **met**" in (tmp_path / "landmarks.md").read_text()
    assert (tmp_path / "landmarks_latency.png").read_bytes()[:4] == b"\x89PNG"


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(_has_cuda_provider(), reason="this onnxruntime has CUDA: there is no fallback to provoke")
def test_silent_fallback_is_reported_not_timed(monkeypatch, tmp_path, aligned_face_path):
    # Pretend CUDA is there: ONNX Runtime then starts the sessions on the CPU instead, silently.
    monkeypatch.setattr(db, "provider_available", lambda kind: (True, ""))
    p = db.run_landmark_device_bench(("cuda",), (1,), runs=1, images=[aligned_face_path], cache=tmp_path)
    (row,) = p["providers"]
    assert row["status"].startswith("fell back to CPUExecutionProvider") and "not timed" in row["status"]
    assert p["latency"] == [] and p["landmarks"] == [] and not p["parity_ok"]


def test_bad_providers_are_one_line(cli, tmp_path):
    code, out = cli("bench", "landmarks", "--providers", "cpu,metal", "--out", tmp_path)
    assert code == 1 and "unknown provider 'metal'" in out and "Traceback" not in out
    code, out = cli("bench", "landmarks", "--providers", ",", "--out", tmp_path)
    assert code == 1 and "no provider given" in out and not (tmp_path / "landmarks.json").exists()
