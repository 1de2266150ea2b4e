"""LandmarkCache (JSON, atomic) and the resumable batch landmarker, with real MediaPipe."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from aucues.errors import AucuesError
from aucues.landmark_cache import FORMAT, LandmarkCache, landmark_dataset
from aucues.landmarks import Face, FaceLandmarker


def _face(seed=0):
    rng = np.random.default_rng(seed)
    return Face(box=np.array([10, 20, 110, 120], np.float32),
                points=rng.uniform(0, 200, (68, 2)).astype(np.float32), score=0.875)


def test_round_trip(tmp_path):
    path = tmp_path / "lm.json"
    c = LandmarkCache(path)
    assert len(c) == 0 and not path.exists()
    c.set("a/x.jpg", _face(1))
    c.set(Path("b") / "y.jpg", None)  # Path keys become forward-slash strings
    c.save()
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT
    assert doc["items"]["b/y.jpg"] is None
    assert set(doc["items"]["a/x.jpg"]) == {"box", "points", "score"}

    c2 = LandmarkCache(path)
    assert "a/x.jpg" in c2 and "b/y.jpg" in c2 and Path("b/y.jpg") in c2 and "c.jpg" not in c2
    assert sorted(c2.keys()) == ["a/x.jpg", "b/y.jpg"]
    f = c2.get("a/x.jpg")
    np.testing.assert_allclose(f.points, _face(1).points, atol=0.006)
    np.testing.assert_allclose(f.box, _face(1).box)
    assert f.points.dtype == np.float32 and f.points.shape == (68, 2)
    assert f.score == pytest.approx(0.875)
    assert c2.get("b/y.jpg") is None
    assert np.isnan(c2.points("b/y.jpg")).all()
    with pytest.raises(KeyError):
        c2.get("never/seen.jpg")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "lm.json"
    c = LandmarkCache(path)
    c.set("a.jpg", _face())
    c.save()
    before = path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["lm.json"]  # no temporary file left behind

    c.set("b.jpg", None)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(AucuesError, match="cannot write"):
        c.save()
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old cache is intact
    assert [p.name for p in tmp_path.iterdir()] == ["lm.json"]


def test_bad_cache_files(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(AucuesError):
        LandmarkCache(p)
    p.write_text(json.dumps({"format": "something-else", "items": {}}))
    with pytest.raises(AucuesError):
        LandmarkCache(p)
    p.write_text(json.dumps({"format": FORMAT, "items": {"a.jpg": {"box": [1, 2]}}}))
    with pytest.raises(AucuesError):
        LandmarkCache(p).get("a.jpg")


@pytest.fixture()
def dataset(tmp_path, astronaut_path, aligned_face_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    shutil.copy(astronaut_path, root / "astro.png")
    shutil.copy(aligned_face_path, root / "sub" / "tom.png")
    import cv2

    cv2.imwrite(str(root / "sub" / "gradient.png"), np.tile(np.arange(256, dtype=np.uint8), (200, 1)))
    (root / "broken.jpg").write_text("this is not a jpeg")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_landmark_dataset_records_faces_missing_and_errors(dataset, tmp_path):
    cache_path = tmp_path / "cache" / "lm.json"
    s = landmark_dataset(dataset, cache_path, progress=False)
    assert (s["total"], s["processed"], s["skipped"], s["faces"], s["missing"], s["errors"]) == (4, 4, 0, 2, 1, 1)
    assert "broken.jpg" in s["error_examples"][0]
    c = LandmarkCache(cache_path)
    assert sorted(c.keys()) == ["astro.png", "broken.jpg", "sub/gradient.png", "sub/tom.png"]
    assert c.get("broken.jpg") is None and c.get("sub/gradient.png") is None
    astro = c.get("astro.png")
    assert 170 < astro.points[:, 0].mean() < 280

    # Second run: nothing to do. A new image: only it is processed.
    s2 = landmark_dataset(dataset, cache_path, progress=False)
    assert (s2["processed"], s2["skipped"]) == (0, 4)
    shutil.copy(dataset / "astro.png", dataset / "sub" / "astro2.png")
    s3 = landmark_dataset(dataset, cache_path, progress=False)
    assert (s3["processed"], s3["skipped"], s3["faces"]) == (1, 4, 1)
    assert "sub/astro2.png" in LandmarkCache(cache_path)


def test_landmark_dataset_resumes_after_interruption(dataset, tmp_path):
    cache_path = tmp_path / "lm.json"
    calls = []

    class Interrupting(FaceLandmarker):
        def detect(self, image):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return super().detect(image)

    with Interrupting() as lm:
        with pytest.raises(KeyboardInterrupt):
            landmark_dataset(dataset, cache_path, progress=False, landmarker=lm, save_every=1)
    # Sorted keys: astro.png, broken.jpg (never reaches detect), sub/gradient.png, then Ctrl-C on
    # sub/tom.png. The three done before it were saved (atomically, no temp file left).
    assert sorted(LandmarkCache(cache_path).keys()) == ["astro.png", "broken.jpg", "sub/gradient.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "lm.json"]
    s = landmark_dataset(dataset, cache_path, progress=False)
    assert (s["skipped"], s["processed"], s["faces"]) == (3, 1, 1)
    assert len(LandmarkCache(cache_path)) == 4


def test_landmark_dataset_pattern_and_bad_root(dataset, tmp_path):
    s = landmark_dataset(dataset, tmp_path / "p.json", pattern="sub/*.png", progress=False)
    assert s["total"] == 2 and sorted(LandmarkCache(tmp_path / "p.json").keys()) == ["sub/gradient.png", "sub/tom.png"]
    with pytest.raises(AucuesError):
        landmark_dataset(tmp_path / "nope", tmp_path / "x.json", progress=False)
