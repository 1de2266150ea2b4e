"""The synthetic AU benchmark: layout, determinism, distractor placement and share, landmarks that
follow the expression, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from aucues.au_regions import au_ellipses
from aucues.codebook import GENERIC_AUS
from aucues.errors import AucuesError
from aucues.io import read_image
from aucues.labels import CLASS_NAMES, RAFDB_TO_INDEX
from aucues.landmark_cache import LandmarkCache
from aucues.synth import CACHE, LABELS, META_NAME, preview_grid, synthesize

SIZE = 112
PER_CLASS = 8


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(out, per_class=PER_CLASS, seed=3, image_size=SIZE, progress=False)
    return out, summary, json.loads((out / META_NAME).read_text())


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(bench):
    out, summary, meta = bench
    lines = (out / LABELS).read_text().splitlines()
    n_test = round(PER_CLASS * 0.25)
    assert len(lines) == 7 * PER_CLASS == summary["images"]
    counts = {"train": np.zeros(7, int), "test": np.zeros(7, int)}
    cache = LandmarkCache(out / CACHE)
    assert len(cache) == len(lines)
    for line in lines:
        m = re.fullmatch(r"(train_\d{5}|test_\d{4})\.jpg ([1-7])", line)
        assert m, line
        split = m.group(1).split("_")[0]
        counts[split][RAFDB_TO_INDEX[int(m.group(2))]] += 1
        key = f"basic/Image/aligned/{m.group(1)}_aligned.jpg"
        img = read_image(out / key)
        assert img.shape == (SIZE, SIZE, 3)
        face = cache.get(key)
        assert face.points.shape == (68, 2) and face.score == 1.0
        # in the reference frame only the chin (jaw points) may pass the bottom edge
        assert (face.points >= 0).all() and (face.points[:, 0] <= SIZE - 1).all()
        assert (face.points[17:, 1] <= SIZE - 1).all() and (face.points[:, 1] <= 1.15 * SIZE).all()
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1
    assert (counts["train"] == PER_CLASS - n_test).all() and (counts["test"] == n_test).all()
    assert "train_00001.jpg" in lines[0] and any(line.startswith("test_0001.jpg") for line in lines)
    assert meta["complete"] is True and meta["seed"] == 3 and len(meta["samples"]) == len(lines)
    assert meta["counts"]["test"] == {c: n_test for c in CLASS_NAMES}
    assert (out / CACHE).read_bytes()[:16] == b"SQLite format 3\x00"  # the scalable cache, not JSON
    assert not list((out / CACHE).parent.glob("*-wal"))  # closed: one self-contained file


def test_deterministic_per_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, per_class=3, seed=5, image_size=64, progress=False)
    synthesize(b, per_class=3, seed=5, image_size=64, progress=False)
    synthesize(c, per_class=3, seed=6, image_size=64, progress=False)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    assert fa.keys() == fc.keys()
    images = [k for k in fa if k.endswith(".jpg")]
    assert sum(fa[k] != fc[k] for k in images) == len(images)


def _au_union(points, size):
    """Union of every generic AU region (hard ellipses of aucues.au_regions)."""
    g = np.arange(size, dtype=np.float64)
    mask = np.zeros((size, size), bool)
    for au in GENERIC_AUS:
        for cx, cy, ax, ay in au_ellipses(points, au, size):
            mask |= ((g[None, :] - cx) / ax) ** 2 + ((g[:, None] - cy) / ay) ** 2 <= 1.0
    return mask


def test_distractor_outside_every_au_region(bench):
    out, _, meta = bench
    cache = LandmarkCache(out / CACHE)
    for s in meta["samples"]:
        assert s["distractor_box"] is not None, s["name"]
        x0, y0, x1, y1 = s["distractor_box"]
        union = _au_union(cache.points(s["image"]), SIZE)
        box = np.zeros_like(union)
        box[max(int(np.floor(y0)), 0):int(np.ceil(y1)) + 1, max(int(np.floor(x0)), 0):int(np.ceil(x1)) + 1] = True
        assert not (union & box).any(), s["name"]
        # the shape is really drawn there: the box differs from the plain background around it
        img = read_image(out / s["image"]).astype(np.float32)
        assert img[box].std() > 10, s["name"]


def test_distractor_share(tmp_path):
    summary = synthesize(tmp_path / "d", per_class=10, seed=1, image_size=48, distractor_share=0.6,
                         test_share=0.2, test_distractor_share=0.1, progress=False)
    meta = json.loads((tmp_path / "d" / META_NAME).read_text())
    for split, want in (("train", 0.6), ("test", 0.1)):
        rows = [s for s in meta["samples"] if s["split"] == split]
        flags = [s["distractor_class"] == s["label"] for s in rows]
        assert flags == [s["distractor_true"] for s in rows]
        assert abs(np.mean(flags) - want) <= 1.0 / len(rows) + 1e-9
        assert summary["distractor_true_share"][split] == pytest.approx(np.mean(flags), abs=1e-4)
        assert all(0 <= s["distractor_class"] < 7 for s in rows)
    none = synthesize(tmp_path / "n", per_class=2, seed=1, image_size=48, distractors=False, progress=False)
    assert none["distractor_true_share"] == {"train": None, "test": None}


def _normalised(points):
    """Landmarks in an eye frame: origin between the eye centres, eye line horizontal, unit = eye distance."""
    p = np.asarray(points, np.float64)
    le, re_ = p[36:42].mean(0), p[42:48].mean(0)
    d = re_ - le
    a = -np.arctan2(d[1], d[0])
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (p - (le + re_) / 2) @ r.T / np.linalg.norm(d)


def test_landmarks_follow_the_expression(bench):
    out, _, meta = bench
    cache = LandmarkCache(out / CACHE)
    feats = {c: [] for c in range(7)}
    for s in meta["samples"]:
        p = _normalised(cache.points(s["image"]))
        corner_lift = (p[51, 1] + p[57, 1]) / 2 - (p[48, 1] + p[54, 1]) / 2   # > 0: corners above centre
        brow = -p[17:27, 1].mean()                                         # height above the eye line
        gap = p[66, 1] - p[62, 1]                                          # inner lips apart
        eye = (p[41, 1] - p[37, 1] + p[46, 1] - p[44, 1]) / 2              # eye opening
        width = p[54, 0] - p[48, 0]
        feats[s["label"]].append((corner_lift, brow, gap, eye, width))
    m = {c: np.mean(v, 0) for c, v in feats.items()}
    N, H, S, F, A, D, SAD = range(7)
    assert m[H][0] > m[N][0] + 0.1 and m[SAD][0] < m[N][0] - 0.1           # AU12 up, AU15 down
    assert m[S][1] > m[N][1] + 0.1 and m[A][1] < m[N][1] - 0.05            # AU1+2 up, AU4 down
    assert m[S][2] > 0.2 and m[N][2] < 0.02                                 # AU26/27 open mouth
    assert m[S][3] > m[N][3] * 1.3 and m[A][3] < m[N][3] * 0.88            # AU5 wide, AU7 narrow
    assert m[F][4] > m[N][4] + 0.1                                          # AU20 stretched lips


def test_preview(bench, tmp_path):
    out, _, _ = bench
    path = preview_grid(out, tmp_path / "sheet.png", per_class=3)
    img = read_image(path)
    assert img.shape[0] == 7 * 192 and img.shape[1] > 3 * 192 and img.std() > 20


def test_bad_values_and_overwrite(tmp_path):
    for kwargs in ({"per_class": 0}, {"distractor_share": 1.2}, {"test_share": -0.1},
                   {"test_distractor_share": 2.0}, {"image_size": 8}, {"variant": "x"}):
        with pytest.raises(AucuesError):
            synthesize(tmp_path / "bad", **{"per_class": 1, **kwargs}, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(AucuesError, match="not a previous synth output"):
        synthesize(other, per_class=1, progress=False)
    prev = tmp_path / "prev"
    synthesize(prev, per_class=4, seed=0, image_size=48, progress=False)
    with pytest.raises(AucuesError, match="--force"):
        synthesize(prev, per_class=1, image_size=48, progress=False)
    synthesize(prev, per_class=1, image_size=48, force=True, progress=False)
    assert len(list((prev / "basic/Image/aligned").glob("*.jpg"))) == 7  # stale images removed


@pytest.mark.parametrize("which", ["default", "legacy"])
def test_faces_are_framed_by_the_template(tmp_path, which):
    """Synthetic faces are drawn in the alignment template's frame (the model's crop), and the
    template is recorded for training to copy into the model's PreprocessConfig."""
    from aucues.align import LEGACY_TEMPLATE, AlignTemplate, five_points
    from aucues.preprocessing import PreprocessConfig

    template = PreprocessConfig().template if which == "default" else LEGACY_TEMPLATE
    out = tmp_path / which
    synthesize(out, per_class=4, seed=1, image_size=SIZE, progress=False,
               template=None if which == "default" else LEGACY_TEMPLATE)
    meta = json.loads((out / META_NAME).read_text())
    assert AlignTemplate.from_config_fields(meta["params"]["align"]) == template
    cache = LandmarkCache(out / CACHE)
    five = np.stack([five_points(cache.points(s["image"])) for s in meta["samples"]])
    target = template.scaled(SIZE)
    # pose jitter is +-8 deg, +-8% scale, +-4% shift: the mean face sits on the template
    assert np.abs(five.mean(0) - target).max() < 0.04 * SIZE, five.mean(0) - target
    eye_line = five[:, :2, 1].mean() / SIZE
    assert abs(eye_line - target[:2, 1].mean() / SIZE) < 0.02
