"""The resumable batch landmarker (aucues.landmark_batch) over a folder, with real MediaPipe: faces,
missing faces and unreadable images recorded, resume after an interruption, and a cache of another
landmark source refused or refreshed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aucues.errors import AucuesError
from aucues.landmark_batch import landmark_dataset
from aucues.landmark_cache import LandmarkCache
from aucues.landmarks import Face, MediaPipeLandmarker


def _face(seed=0):
    rng = np.random.default_rng(seed)
    return Face(box=np.array([10, 20, 110, 120], np.float32),
                points=rng.uniform(0, 200, (68, 2)).astype(np.float32), score=0.875)


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
    cache_path = tmp_path / "cache" / "lm.sqlite"
    s = landmark_dataset(dataset, cache_path, progress=False)
    assert (s["total"], s["processed"], s["skipped"], s["faces"], s["missing"], s["errors"]) == (4, 4, 0, 2, 1, 1)
    assert "broken.jpg" in s["error_examples"][0]
    c = LandmarkCache(cache_path)
    assert c.keys() == ["astro.png", "broken.jpg", "sub/gradient.png", "sub/tom.png"]
    assert s["ignored"] == 1  # notes.txt, counted
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
    cache_path = tmp_path / "lm.sqlite"
    calls = []

    class Interrupting(MediaPipeLandmarker):
        def detect(self, image):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return super().detect(image)

    with Interrupting() as lm:
        with pytest.raises(KeyboardInterrupt):
            landmark_dataset(dataset, cache_path, progress=False, landmarker=lm)
    # Sorted keys: astro.png, broken.jpg (never reaches detect), sub/gradient.png, then Ctrl-C on
    # sub/tom.png. The three done before it were committed (and the cache closed: no side files).
    assert LandmarkCache(cache_path, readonly=True).keys() == ["astro.png", "broken.jpg", "sub/gradient.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "lm.sqlite"]
    s = landmark_dataset(dataset, cache_path, progress=False)
    assert (s["skipped"], s["processed"], s["faces"]) == (3, 1, 1)
    assert len(LandmarkCache(cache_path)) == 4


def test_landmark_dataset_pattern_and_bad_root(dataset, tmp_path):
    s = landmark_dataset(dataset, tmp_path / "p.sqlite", pattern="sub/*.png", progress=False)
    assert s["total"] == 2 and LandmarkCache(tmp_path / "p.sqlite").keys() == ["sub/gradient.png", "sub/tom.png"]
    with pytest.raises(AucuesError):
        landmark_dataset(tmp_path / "nope", tmp_path / "x.json", progress=False)


class _Shifted(MediaPipeLandmarker):
    """MediaPipe with its points moved by `dx` px, under another recorded source (a stand-in for a
    different 468 -> 68 mapping)."""

    def __init__(self, source: str, dx: float):
        super().__init__()
        self.source, self.dx = source, dx

    def detect(self, image):
        return [Face(box=f.box, points=f.points + np.float32(self.dx), score=f.score) for f in super().detect(image)]


def test_a_cache_of_another_landmark_source_is_refused_then_refreshed(dataset, tmp_path):
    from aucues.landmarks import MESH68_SOURCE
    from aucues.train.data.base import load_landmarks

    cache_path = tmp_path / "lm.sqlite"
    s = landmark_dataset(dataset, cache_path, progress=False)
    assert s["refreshed"] == 0 and LandmarkCache(cache_path, readonly=True).source == MESH68_SOURCE
    today = LandmarkCache(cache_path, readonly=True).points("astro.png")
    _, where = load_landmarks(cache_path, ["astro.png"])
    assert "WARNING" not in where

    with _Shifted("mediapipe-face-mesh -> ibug68/3", 5.0) as newer:
        with pytest.raises(AucuesError, match="were made by mediapipe-face-mesh -> ibug68/2.*--refresh") as e:
            landmark_dataset(dataset, cache_path, progress=False, landmarker=newer)
        assert "\n" not in str(e.value)
        assert np.array_equal(LandmarkCache(cache_path, readonly=True).points("astro.png"), today)  # untouched
        s = landmark_dataset(dataset, cache_path, progress=False, landmarker=newer, refresh=True)
    assert (s["refreshed"], s["processed"], s["skipped"]) == (4, 4, 0)
    c = LandmarkCache(cache_path, readonly=True)
    assert c.source == "mediapipe-face-mesh -> ibug68/3" and len(c) == 4
    np.testing.assert_allclose(c.points("astro.png"), today + 5.0, atol=0.05)  # every entry redone
    # what training reads says so: today's landmarker is /2, the cache holds another mapping's points
    pts, where = load_landmarks(cache_path, ["astro.png"])
    assert "astro.png" in pts and "WARNING" in where and "another version of the 468 -> 68 mapping" in where


def test_a_cache_without_a_recorded_source_is_an_old_mapping(dataset, tmp_path):
    from aucues.train.data.base import load_landmarks

    cache_path = tmp_path / "old.sqlite"
    with LandmarkCache(cache_path) as old:  # as an aucues before sources were recorded wrote it
        old.set("astro.png", _face(3))
    assert LandmarkCache(cache_path, readonly=True).source is None
    pts, where = load_landmarks(cache_path, ["astro.png"])
    assert "astro.png" in pts and "WARNING: made by an unrecorded source" in where
    with pytest.raises(AucuesError, match="unrecorded source.*--refresh"):
        landmark_dataset(dataset, cache_path, progress=False)
    assert len(LandmarkCache(cache_path, readonly=True)) == 1  # refused before anything was written
    # a cache whose only writer records no source (a custom landmarker) is not judged
    class Anonymous(MediaPipeLandmarker):
        source = None

    with Anonymous() as anon:
        s = landmark_dataset(dataset, cache_path, progress=False, landmarker=anon)
    assert s["processed"] == 3 and LandmarkCache(cache_path, readonly=True).source is None
