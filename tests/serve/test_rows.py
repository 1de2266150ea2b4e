"""Issue 13, per-row results: several images in one request get an answer for every good row and,
for each bad row, its own error (the `status` output); bad rows carry zeros and no label. The client
and `aucues predict --batch` report them row by row. A one-image request keeps its request-level
error (HTTP 400 / gRPC INVALID_ARGUMENT, tested in test_reliability.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from aucues.io import read_image
from aucues.serve.client import AucuesClient, Prediction, PredictError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rows(astronaut_path):
    bgr = cv2.cvtColor(read_image(astronaut_path), cv2.COLOR_RGB2BGR)
    enc = lambda ext, img: cv2.imencode(ext, img)[1].tobytes()  # noqa: E731
    good = astronaut_path.read_bytes()
    return [
        ("png", good, None),
        ("garbage", b"this is not an image at all" * 50, "not an image"),
        ("bmp", enc(".bmp", bgr), None),
        ("no face", enc(".png", np.full((240, 320, 3), 90, np.uint8)), "no face"),
        ("jpeg", enc(".jpg", bgr), None),
        ("empty-ish", b"\x89PNG\r\n\x1a\n", "PNG header"),
        ("png again", good, None),
        ("webp", enc(".webp", bgr), None),
    ]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_batch_answers_every_good_row_and_each_bad_row_alone(triton, rows, protocol):
    url = triton.http_url if protocol == "http" else triton.grpc_url
    with AucuesClient(url, protocol) as c:
        single = c.predict(rows[0][1]).result
        got = c.predict_many([data for _, data, _ in rows], maps=True)
        assert len(got) == len(rows)
        for (name, _, err), res in zip(rows, got):
            if err is None:
                assert isinstance(res, Prediction), f"{name}: {res}"
                assert res.result["num_faces"] == 1 and res.result["label"] in c.spec.class_names
            else:
                assert isinstance(res, PredictError) and err in str(res), f"{name}: {res}"
        for i in (0, 6):  # a row in a batch answers as the same image alone
            np.testing.assert_allclose(list(got[i].result["probabilities"].values()),
                                       list(single["probabilities"].values()), atol=1e-5)
        # the raw outputs of a bad row: zeros, an empty label, its error as status
        out = c.infer_raw([data for _, data, _ in rows])
        status = [s.decode() for s in out["status"].reshape(-1)]
        assert [s == "ok" for s in status] == [e is None for _, _, e in rows], status
        for i, (_, _, err) in enumerate(rows):
            if err is not None:
                assert out["label"].reshape(-1)[i] == b""
                assert not out["probabilities"][i].any() and not out["landmarks"][i].any()
                assert int(out["num_faces"].reshape(-1)[i]) == 0
    assert triton.is_ready()


def test_every_row_bad_still_answers_per_row(triton, rows):
    bad = [data for _, data, err in rows if err is not None]
    with AucuesClient(triton.http_url) as c:
        got = c.predict_many(bad)
    assert all(isinstance(r, PredictError) for r in got)
    assert [e for _, _, e in rows if e is not None][0] in str(got[0])
    # and one bad image alone is still a request-level client error
    with AucuesClient(triton.http_url) as c:
        with pytest.raises(PredictError, match="not an image"):
            c.predict(bad[0])


def test_predict_cli_batches_and_reports_row_by_row(triton, rows, tmp_path):
    names = []
    for i, (name, data, err) in enumerate(rows[:5]):
        ext = {"bmp": ".bmp", "jpeg": ".jpg"}.get(name, ".png")
        p = tmp_path / f"{i}_{name.replace(' ', '_')}{ext}"
        p.write_bytes(data)
        names.append((str(p), err))
    exe = Path(sys.executable).parent / "aucues"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "aucues"
    r = subprocess.run([str(exe), "predict", *[n for n, _ in names], "--url", triton.http_url, "--batch", "4",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [ln["input"] for ln in lines] == [n for n, _ in names]
    for ln, (_, err) in zip(lines, names):
        if err is None:
            assert "label" in ln and "error" not in ln, ln
        else:
            assert err in ln["error"] and "label" not in ln, ln
    assert "2 of 5 inputs failed" in r.stderr and "Traceback" not in r.stderr
