"""The `aucues` ensemble on a real tritonserver over HTTP and gRPC: outputs equal in-process ONNX
Runtime on the same aligned face, and the predict command (JSON, overlays, video, errors)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import skip_unless_ci

from aucues.serve.client import AucuesClient
from aucues.serve.pipeline import postprocess

ATOL = 1e-4


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_ensemble_matches_in_process_onnxruntime(triton, pipeline, astronaut_bytes, protocol):
    url = triton.http_url if protocol == "http" else triton.grpc_url
    with AucuesClient(url, protocol) as client:
        client.check_ready()
        pred = client.predict(astronaut_bytes, maps=True)
    res, maps = pred.result, pred.maps
    spec = pipeline.spec
    assert res["label"] in spec.class_names and res["num_faces"] == 1
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-5
    # Same aligned face -> in-process ONNX Runtime -> same postprocess.
    face = maps["aligned_face"]
    assert face.shape == (96, 96, 3) and face.dtype == np.uint8
    landmarks = np.asarray(res["landmarks"], np.float32)
    raw = pipeline.classify(spec.preprocess.normalize(face))
    probs = np.array([res["probabilities"][n] for n in spec.class_names])
    np.testing.assert_allclose(probs, raw["probabilities"][0], atol=ATOL)
    ex = postprocess(spec, raw["probabilities"][0], raw["cam"][0], raw["attention_5"][0], landmarks)
    assert res["label"] == ex.label and res["topk"] == ex.topk
    np.testing.assert_allclose(maps["cam"], ex.cam, atol=ATOL)
    np.testing.assert_allclose(maps["attention"], ex.attention, atol=ATOL)
    for m in (maps["cam"], maps["attention"]):  # min-max normalised, then upsampled: within [0, 1]
        assert m.shape == (96, 96) and 0 <= m.min() and 0.9 < m.max() <= 1
    if ex.label == "Neutral":
        assert res["interpretability_score"] is None and res["au_evidence"] == []
    else:
        assert res["interpretability_score"] == pytest.approx(ex.interpretability_score, abs=1e-3)
        assert [r["au"] for r in res["au_evidence"]] == [r["au"] for r in ex.au_evidence]
        for a, b in zip(res["au_evidence"], ex.au_evidence):
            assert a["share"] == pytest.approx(b["share"], abs=1e-3) and a["name"].startswith(f"AU{a['au']} ")
    # The server's face finding equals the in-process preprocessor's on the same bytes.
    pre = pipeline.preprocessor(astronaut_bytes)
    np.testing.assert_allclose(res["face_box"], pre.face_box, atol=1e-3)
    np.testing.assert_allclose(landmarks, pre.landmarks, atol=0.01)
    assert np.abs(face.astype(int) - pre.aligned_face.astype(int)).max() <= 1


def test_predict_cli_json_overlays_and_errors(cli, triton, astronaut_path, tmp_path):
    import cv2

    from aucues.io import read_image

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    code, out = cli("predict", astronaut_path, blank, "--url", triton.http_url, "--json",
                    "--overlays", tmp_path / "ov")
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    assert code == 1, out  # one input failed
    ok = [l for l in lines if "error" not in l]
    bad = [l for l in lines if "error" in l]
    assert len(ok) == 1 and len(bad) == 1 and "no face" in bad[0]["error"]
    r = ok[0]
    assert set(r) >= {"label", "probabilities", "au_evidence", "interpretability_score", "face_box", "landmarks"}
    assert len(r["landmarks"]) == 68 and len(r["face_box"]) == 4
    img = read_image(r["overlay"])
    assert img.shape[1] > 2 * 96 and img.std() > 10
    code, out = cli("predict", astronaut_path, "--url", triton.grpc_url, "--protocol", "grpc")
    assert code == 0 and out.strip().startswith(str(astronaut_path)), out


def test_predict_video(cli, triton, astronaut_path, tmp_path):
    import cv2

    from aucues.io import read_image

    frame = cv2.cvtColor(read_image(astronaut_path), cv2.COLOR_RGB2BGR)
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (frame.shape[1], frame.shape[0]))
    assert w.isOpened()
    for _ in range(20):  # 2 s at 10 fps
        w.write(frame)
    w.release()
    code, out = cli("predict", path, "--url", triton.http_url, "--json", "--fps", "2")
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    assert code == 0, out
    assert [l["input"].rsplit("@", 1)[1] for l in lines] == ["0.00s", "0.50s", "1.00s", "1.50s"]
    assert all(l["num_faces"] == 1 for l in lines)


def test_unreachable_server_is_one_line(cli, astronaut_path):
    from aucues.serve.tritonserver import free_port

    code, out = cli("predict", astronaut_path, "--url", f"127.0.0.1:{free_port()}")
    assert code == 1 and "not reachable" in out and len(out.strip().splitlines()) == 1, out


def test_server_health_and_metrics(triton):
    import urllib.request

    assert triton.is_ready()
    with urllib.request.urlopen(triton.metrics_url, timeout=5) as r:
        assert b"nv_inference_request_success" in r.read()
    assert triton.start_seconds is not None and triton.start_seconds < 60
    assert not math.isnan(triton.start_seconds)


def _serve_cmd(repo, *extra):
    import sys
    from pathlib import Path

    from aucues.serve.tritonserver import free_port

    aucues = Path(sys.executable).parent / "aucues"
    ports = [str(free_port()) for _ in range(3)]
    return [str(aucues), "serve", "--repository", str(repo), "--http-port", ports[0], "--grpc-port", ports[1],
            "--metrics-port", ports[2], "--timeout", "120", *extra], ports


def test_serve_cli_starts_and_stops_on_sigterm(triton, repository):
    """`aucues serve` prints the endpoints once ready and stops cleanly on SIGTERM (forwarded)."""
    import signal
    import subprocess
    import time
    import urllib.request

    from aucues.errors import AucuesError
    from aucues.serve.tritonserver import find_tritonserver

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    cmd, ports = _serve_cmd(repository)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "metrics" in line:
                break
        out = "".join(lines)
        assert "ready in" in out and f"127.0.0.1:{ports[0]}" in out and f"127.0.0.1:{ports[1]}" in out, out
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=5) as r:
            assert r.status == 200
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + rest
        assert "stopped" in rest and time.monotonic() - t < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_cli_reports_a_broken_repository(triton, repository, tmp_path):
    import shutil
    import subprocess

    broken = tmp_path / "broken"
    shutil.copytree(repository, broken)
    (broken / "classifier" / "1" / "model.onnx").unlink()
    cmd, _ = _serve_cmd(broken)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "exited with code" in res.stderr and "log tail" in res.stderr and "Traceback (most recent" not in res.stderr
