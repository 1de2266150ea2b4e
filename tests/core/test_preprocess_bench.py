"""`aucues bench preprocess` times real MediaPipe on real photos, cold and warm. No speed asserts."""

import json


def test_preprocess_bench_cli(cli, tmp_path, aligned_face_path, astronaut_path):
    code, out = cli("bench", "preprocess", aligned_face_path, astronaut_path, "--runs", "2", "--cold-runs", "1",
                    "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "preprocess.json").read_text())
    rows = {r["image"]: r for r in payload["rows"]}
    assert set(rows) == {aligned_face_path.name, astronaut_path.name}
    for r in rows.values():
        assert r["faces"] == 1  # real landmarks were found, so alignment was timed too
        assert r["cold_p50_ms"] > 0 and r["warm_detect_p50_ms"] > 0 and r["warm_align_p50_ms"] > 0
    assert payload["landmarker_construct_ms"]["p50"] > 0
    assert (tmp_path / "preprocess_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| image |" in (tmp_path / "preprocess.md").read_text()


def test_preprocess_bench_missing_image(cli, tmp_path):
    code, out = cli("bench", "preprocess", tmp_path / "nope.jpg", "--out", tmp_path)
    assert code == 1 and "no such image" in out and "Traceback" not in out
