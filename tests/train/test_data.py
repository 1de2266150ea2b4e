"""Datasets: RAF-DB layout, synthetic benchmark, folder and CSV readers; unreadable images skipped
and counted; transforms that move the AU map with the image; RAF-DB preparation with MediaPipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aucues.au_regions import template_points
from aucues.errors import AucuesError
from aucues.io import write_image
from aucues.labels import INDEX_TO_RAFDB
from aucues.landmark_cache import CACHE_NAME, LandmarkCache
from aucues.landmarks import Face
from aucues.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from aucues.train.data import (FERDataset, SkipLog, build_transform, collate, open_dataset, train_val_split)

SIZE = 64


def _face_image(size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((size, size, 3)) * 255).astype(np.uint8)


def _fake_rafdb(root, labels=(1, 2, 3, 4, 5, 6, 0), n_test=2, aligned_dir="basic/Image/aligned",
                with_cache=True):
    """A tiny RAF-DB: images, label file (RAF ids), landmark cache of template faces."""
    lines, cache = [], LandmarkCache(root / "basic" / CACHE_NAME) if with_cache else None
    names = [f"train_{i + 1:05d}" for i in range(len(labels))] + [f"test_{i + 1:04d}" for i in range(n_test)]
    labs = list(labels) + [1] * n_test
    for k, (stem, label) in enumerate(zip(names, labs)):
        key = f"{aligned_dir}/{stem}_aligned.jpg"
        write_image(root / key, _face_image(seed=k))
        pts = template_points(SIZE)
        if cache is not None:
            cache.set(key, Face(box=np.r_[pts.min(0), pts.max(0)], points=pts, score=1.0))
        lines.append(f"{stem}.jpg {INDEX_TO_RAFDB[label]}")
    (root / "basic/EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "basic/EmoLabel/list_patition_label.txt").write_text("\n".join(lines) + "\n")
    if cache is not None:
        cache.close()
    return names


def test_rafdb_layout_labels_splits_landmarks(tmp_path):
    _fake_rafdb(tmp_path)
    idx = open_dataset("rafdb", tmp_path)
    assert [len(idx.split(s)) for s in ("train", "test")] == [7, 2]
    # RAF ids were mapped to our indices: train_00001 was written as Happiness (1) with RAF id 4
    first = idx.split("train")[0]
    assert first.label == 1 and first.key == "basic/Image/aligned/train_00001_aligned.jpg"
    assert len(idx.landmarks) == 9 and "landmarks for 9/9" in idx.summary()
    with pytest.raises(AucuesError, match="no 'val' split"):
        idx.split("val")


def test_rafdb_prefers_our_aligned_faces_and_errors(tmp_path):
    _fake_rafdb(tmp_path)
    _fake_rafdb(tmp_path, aligned_dir="basic/Image/aucues_aligned")
    idx = open_dataset("rafdb", tmp_path)
    assert all(r.key.startswith("basic/Image/aucues_aligned/") for r in idx.split("all"))
    with pytest.raises(AucuesError, match="not a RAF-DB folder"):
        open_dataset("rafdb", tmp_path / "basic")
    with pytest.raises(AucuesError, match="no such dataset folder"):
        open_dataset("rafdb", tmp_path / "nope")
    (tmp_path / "basic/EmoLabel/list_patition_label.txt").write_text("train_00001.jpg 9\n")
    with pytest.raises(AucuesError, match=r"list_patition_label.txt:1"):
        open_dataset("rafdb", tmp_path)


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path):
    names = _fake_rafdb(tmp_path)
    (tmp_path / f"basic/Image/aligned/{names[0]}_aligned.jpg").unlink()             # missing
    (tmp_path / f"basic/Image/aligned/{names[1]}_aligned.jpg").write_bytes(b"\xff\xd8garbage")  # corrupt
    idx = open_dataset("rafdb", tmp_path)
    assert idx.n_missing == 1 and len(idx.split("train")) == 6
    ds = FERDataset(idx.split("train"), idx.landmarks, build_transform(PreprocessConfig(image_size=48), False))
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["n"] == 5 and batch["image"].shape == (5, 3, 48, 48)
    assert batch["skipped"] == [f"basic/Image/aligned/{names[1]}_aligned.jpg"]
    log = SkipLog()
    log.update(batch)
    log.update(batch)  # the same image again (next epoch): counted once
    assert log.count == 1


def test_samples_maps_and_validity(tmp_path):
    _fake_rafdb(tmp_path)
    idx = open_dataset("rafdb", tmp_path)
    recs = idx.split("train")
    ds = FERDataset(recs, idx.landmarks, build_transform(PreprocessConfig(image_size=48), False),
                    map_at_output=True)
    for i, r in enumerate(recs):
        s = ds[i]
        assert s["image"].dtype == torch.float32 and s["au_map"].shape == (48, 48)
        assert float(s["au_map"].min()) >= 0 and float(s["au_map"].max()) <= 1
        assert s["valid"] == (r.label != 0)   # Neutral has no AU map
    # Happiness (AU6, AU12, AU25): the map peaks in the lower half of the face (cheeks, mouth)
    happy = ds[0]["au_map"].numpy()
    assert happy[24:].sum() > 3 * happy[:24].sum()
    # no landmarks -> invalid map, CE only
    ds2 = FERDataset(recs, {}, build_transform(PreprocessConfig(image_size=48), True))
    assert not any(ds2[i]["valid"] for i in range(len(recs))) and ds2.n_with_landmarks == 0


def test_synthetic_is_rafdb_layout(tmp_path):
    from aucues.synth import synthesize

    synthesize(tmp_path, per_class=4, seed=1, image_size=64, progress=False)
    idx = open_dataset("synthetic", tmp_path)
    assert len(idx.split("train")) == 21 and len(idx.split("test")) == 7
    assert len(idx.landmarks) == 28 and idx.name == "synthetic"


def test_folder_and_csv(tmp_path):
    for split, cls, n in (("train", "Happiness", 3), ("train", "sad", 2), ("test", "anger", 1)):
        for k in range(n):
            write_image(tmp_path / split / cls / f"{k}.png", _face_image(seed=k))
    idx = open_dataset("folder", tmp_path)
    assert sorted({r.label for r in idx.split("train")}) == [1, 6] and idx.split("test")[0].label == 4
    assert idx.landmark_source == "none" and not idx.landmarks
    # a landmark cache at the root is used
    cache = LandmarkCache(tmp_path / "aucues_landmarks68.json")
    cache.set("train/Happiness/0.png", Face(np.zeros(4, np.float32), template_points(SIZE), 1.0))
    cache.save()
    assert list(open_dataset("folder", tmp_path).landmarks) == ["train/Happiness/0.png"]

    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label,split\ntrain/Happiness/0.png,happy,train\ntrain/sad/0.png,6,test\n"
                        "missing.png,Fear,train\n")
    idx = open_dataset("folder", csv_path)
    assert [r.label for r in idx.split("train")] == [1] and idx.split("test")[0].label == 6
    assert idx.n_missing == 1
    csv_path.write_text("train/Happiness/0.png,bored\n")
    with pytest.raises(AucuesError, match=r"list.csv:1: unknown expression 'bored'"):
        open_dataset("folder", csv_path)
    with pytest.raises(AucuesError, match="no images found"):
        open_dataset("folder", tmp_path / "train" / "sad")


def test_affectnet_layout(tmp_path):
    for split, ids in (("train_set", [(0, 1), (1, 2), (2, 7), (3, 9)]), ("val_set", [(4, 6)])):
        for i, aff in ids:
            write_image(tmp_path / split / "images" / f"{i}.jpg", _face_image(seed=i))
            (tmp_path / split / "annotations").mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / split / "annotations" / f"{i}_exp.npy", np.array(str(aff)))
            np.save(tmp_path / split / "annotations" / f"{i}_lnd.npy", template_points(SIZE).reshape(-1))
    idx = open_dataset("affectnet", tmp_path)
    # 1 Happy -> 1, 2 Sad -> 6; Contempt (7) and 9 dropped with 7 classes; val_set is the test split
    assert [r.label for r in idx.split("train")] == [1, 6] and idx.split("test")[0].label == 4
    assert idx.landmark_source.startswith("AffectNet") and len(idx.landmarks) == 3
    idx8 = open_dataset("affectnet", tmp_path, num_classes=8)
    assert [r.label for r in idx8.split("train")] == [1, 6, 7] and len(idx8.class_names) == 8


def test_stratified_seeded_validation_split(tmp_path):
    from aucues.train.data import Record

    recs = [Record(f"/x/{i}.jpg", f"{i}.jpg", i % 3, "train") for i in range(60)]
    tr, va = train_val_split(recs, 0.2, seed=3)
    assert len(va) == 12 and len(tr) == 48 and not set(tr) & set(va)
    assert [sum(r.label == c for r in va) for c in range(3)] == [4, 4, 4]
    assert train_val_split(recs, 0.2, seed=3)[1] == va and train_val_split(recs, 0.2, seed=4)[1] != va
    assert train_val_split(recs, 0.0, seed=3) == (recs, [])


def _blob_pair(size=80):
    """An image and a map with the same asymmetric blob (right half, upper part)."""
    img = np.zeros((size, size, 3), np.uint8)
    amap = np.zeros((size, size), np.float32)
    img[12:30, 50:70] = 255
    amap[12:30, 50:70] = 1.0
    return img, amap


def _centroid(m):
    ys, xs = np.nonzero(m > 0.5)
    return np.array([xs.mean(), ys.mean()])


def test_geometric_augmentations_move_the_map_with_the_image():
    pre = PreprocessConfig(image_size=64)
    tf = build_transform(pre, train=True)
    img, amap = _blob_pair()
    flipped = 0
    for seed in range(24):
        torch.manual_seed(seed)
        from aucues.train.data.transforms import _to_tensors

        ti, tm = tf.geometric(*_to_tensors(img, amap))
        bright = ti.float().mean(0).numpy() / 255.0
        m = tm[0].numpy()
        assert m.shape == (64, 64) and set(np.unique(m)) <= {0.0, 1.0}  # nearest: no new values
        ci, cm = _centroid(bright), _centroid(m)
        assert np.abs(ci - cm).max() < 2.0, (seed, ci, cm)
        flipped += cm[0] < 32  # the blob started on the right: a flip brings it left
    assert 3 <= flipped <= 21  # hflip p=0.5 happens, and not always


def test_photometric_augmentations_leave_the_map_alone():
    pre = PreprocessConfig(image_size=64)
    img, amap = _blob_pair(64)
    tf = build_transform(pre, train=True)
    tf.geometric = lambda a, b: (a, b)  # isolate the photometric part
    for seed in range(8):
        torch.manual_seed(seed)
        x, m = tf(img, amap)
        assert torch.equal(m, torch.from_numpy(amap))
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    # eval: resize + normalise, the map resized with the image
    x, m = build_transform(pre, train=False)(img, amap)
    assert x.shape == (3, 64, 64) and torch.equal(m, torch.from_numpy(amap))
    expected = (0.0 - pre.mean[0]) / pre.std[0]
    assert float(x[0, 0, 0]) == pytest.approx(expected, abs=1e-5)


def test_augmentation_depends_on_seed_epoch_index_only(tmp_path):
    _fake_rafdb(tmp_path)
    idx = open_dataset("rafdb", tmp_path)
    tf = build_transform(PreprocessConfig(image_size=48), train=True)
    ds = FERDataset(idx.split("train"), idx.landmarks, tf, seed=5)
    a = ds[2]["image"]
    torch.manual_seed(123)  # global RNG state does not matter
    assert torch.equal(ds[2]["image"], a)
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], a)


def test_prepare_rafdb_with_mediapipe(tmp_path, astronaut_path, aligned_face_path):
    """Real MediaPipe on real photos: crop (box +30%), landmarks, alignment, cache; no face and
    unreadable originals recorded, never fatal; a second run resumes (nothing left to do)."""
    import cv2

    from aucues.io import read_image
    from aucues.train.data.prepare import prepare_rafdb

    root = tmp_path
    orig = root / "basic/Image/original"
    orig.mkdir(parents=True)
    astro = read_image(astronaut_path)
    write_image(orig / "train_00001.jpg", astro)
    write_image(orig / "train_00002.jpg", cv2.resize(read_image(aligned_face_path), (160, 160)))
    write_image(orig / "train_00003.jpg", np.full((120, 120, 3), 127, np.uint8))  # no face
    (orig / "test_0001.jpg").write_bytes(b"not an image")
    # bad images among the good ones, each once stopped the whole run: too small for the detector,
    # and a box file so large that the crop cannot be allocated
    write_image(orig / "test_0002.jpg", np.full((4, 4, 3), 90, np.uint8))
    write_image(orig / "test_0003.jpg", np.full((50, 50, 3), 90, np.uint8))
    boxes = root / "basic/Annotation/boundingbox"
    boxes.mkdir(parents=True)
    (boxes / "train_00001_boxes.txt").write_text("170.0 40.0 300.0 200.0\n")  # the astronaut's face
    (boxes / "test_0003_boxes.txt").write_text("0 0 1e9 1e9\n")
    (root / "basic/EmoLabel").mkdir(parents=True)
    (root / "basic/EmoLabel/list_patition_label.txt").write_text(
        "train_00001.jpg 4\ntrain_00002.jpg 1\ntrain_00003.jpg 7\ntest_0001.jpg 5\ntest_0002.jpg 2\n"
        "test_0003.jpg 3\n")
    s = prepare_rafdb(root, size=112, progress=False)
    assert (s["faces"], s["missing"], s["errors"], s["processed"]) == (2, 1, 3, 6)
    examples = " | ".join(s["error_examples"])
    assert "test_0001" in examples and "too small" in examples and "test_0003" in examples
    out = root / "basic/Image/aucues_aligned"
    assert sorted(p.name for p in out.iterdir()) == ["train_00001_aligned.jpg", "train_00002_aligned.jpg",
                                                     "train_00003_aligned.jpg"]
    assert not (root / "basic/Image/aligned").exists()  # RAF-DB's own folder untouched
    cache = LandmarkCache(root / "basic" / CACHE_NAME, readonly=True)
    for stem in ("train_00003", "test_0001", "test_0002", "test_0003"):
        assert cache.get(f"basic/Image/aucues_aligned/{stem}_aligned.jpg") is None
    pts = cache.points("basic/Image/aucues_aligned/train_00001_aligned.jpg")
    # aligned with the default (reference) template, recorded for training: eyes near its eye line
    # (46% of the height), brows inside the crop (the chin may pass the bottom edge)
    from aucues.align import REFERENCE_TEMPLATE
    from aucues.train.data.prepare import read_prepare_template

    assert read_prepare_template(root) == REFERENCE_TEMPLATE
    eyes = np.stack([pts[36:42].mean(0), pts[42:48].mean(0)])
    assert abs(eyes[0, 1] - eyes[1, 1]) < 2 and np.all((pts[17:] > -5) & (pts[17:] < 117))
    assert abs(eyes[:, 1].mean() - REFERENCE_TEMPLATE.scaled(112)[:2, 1].mean()) < 4
    # the reader now uses our aligned faces; the bad ones count as missing
    idx = open_dataset("rafdb", root)
    assert len(idx.split("train")) == 3 and idx.n_missing == 3 and len(idx.landmarks) == 2
    again = prepare_rafdb(root, size=112, progress=False)
    assert again["processed"] == 3 and again["skipped"] == 3 and again["errors"] == 3  # bad ones retried
    # a cache from an older aucues (no landmark source recorded: the old 468 -> 68 mapping) is refused,
    # then redone whole with refresh
    with LandmarkCache(root / "basic" / CACHE_NAME) as c:
        c._writable().execute("DELETE FROM meta WHERE name='source'")
    with pytest.raises(AucuesError, match="unrecorded source.*--refresh"):
        prepare_rafdb(root, size=112, progress=False)
    fresh = prepare_rafdb(root, size=112, progress=False, refresh=True)
    assert fresh["refreshed"] == 6 and fresh["processed"] == 6 and fresh["faces"] == 2


def test_random_erasing_fills_random_values_before_normalisation():
    """§9: erased boxes hold random values on the [0, 1] image, then the whole image is normalised,
    so inside a box the values spread like N(0, 1) / std (~4.4), not N(0, 1) as erasing after
    normalisation would give."""
    from torchvision.transforms import v2

    from aucues.preprocessing import PreprocessConfig
    from aucues.train.data.transforms import TrainTransform

    torch.manual_seed(0)
    t = TrainTransform(PreprocessConfig(image_size=64))
    t.geometric = lambda img, m: (img, m)          # only the erasing varies
    t.photometric = v2.Identity()
    t.erase = v2.RandomErasing(p=1.0, scale=(0.3, 0.3), ratio=(1.0, 1.0), value="random")
    gray = np.full((64, 64, 3), 128, np.uint8)
    img, _ = t(gray, np.zeros((64, 64), np.float32))
    plain = (128 / 255 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    erased = (img - torch.tensor(plain, dtype=torch.float32)[:, None, None]).abs().amax(0) > 1e-4
    assert 0.2 < erased.float().mean() < 0.4
    assert float(img[:, erased].std()) > 3.0



def test_prepare_picks_the_face_nearest_the_annotation_box():
    from aucues.train.data.prepare import nearest_face

    big_bystander = Face(box=np.array([0, 0, 60, 60], np.float32), points=np.zeros((68, 2), np.float32), score=0.9)
    central = Face(box=np.array([45, 45, 75, 75], np.float32), points=np.zeros((68, 2), np.float32), score=0.9)
    assert nearest_face([big_bystander, central], (120, 120, 3)) == 1   # largest-first order, centre wins


def test_prepare_aligns_the_original_photo_and_falls_back_to_the_plain_box():
    """§10: the warp takes pixels from the whole photo (not the enlarged crop, whose outside is
    black), and without a face the un-enlarged box is resized."""
    from aucues.train.data.prepare import align_from_original, crop_box, fallback_crop

    photo = np.full((400, 400, 3), 200, np.uint8)
    box = np.array([180, 180, 220, 220], np.float64)      # a small box: the 1.3x crop is 52 px
    pts = template_points(224).astype(np.float64) * (52 / 224)  # a face filling the crop
    via_crop = align_from_original(photo, box, pts, 64, PreprocessConfig().template)
    assert via_crop.image.min() == 200                      # no black border from the crop
    assert crop_box(photo, box).shape[:2] == (52, 52)
    fb = fallback_crop(photo, box, 48)
    assert fb.shape == (48, 48, 3) and fb.min() == 200
