"""AffectNet in the layout of its cropped release (what this reader expects):

    <root>/train_set/images/<id>.jpg        <root>/train_set/annotations/<id>_exp.npy
    <root>/val_set/images/<id>.jpg          <root>/val_set/annotations/<id>_exp.npy

`<id>_exp.npy` holds the AffectNet expression id (0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear,
5 Disgust, 6 Anger, 7 Contempt), mapped with AFFECTNET_TO_INDEX. With 7 classes (the paper) Contempt
is dropped; with 8 it keeps index 7 (no AU map: CE only). The official validation set is the test
split (docs/method.md §1); model selection holds out part of train_set.

Landmarks: `<root>/aucues_landmarks68.sqlite` (LandmarkCache, keys like `train_set/images/0.jpg`)
when present, else AffectNet's own 68 points `<id>_lnd.npy` (136 values x0,y0,x1,y1,... in image
pixels) when present, else none (CE only). Any other AffectNet packaging can be read as a CSV with
`--dataset folder` (path,label[,split]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aucues.errors import AucuesError
from aucues.labels import AFFECTNET_TO_INDEX, NUM_CLASSES, class_names
from aucues.train.data.base import CACHE_NAME, DatasetIndex, Record, load_landmarks

SPLITS = {"train": "train_set", "test": "val_set"}


def _read_npy(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def read_affectnet(root: str | Path, num_classes: int = NUM_CLASSES) -> DatasetIndex:
    root = Path(root)
    names = class_names(num_classes)
    if not any((root / d / "images").is_dir() for d in SPLITS.values()):
        raise AucuesError(f"{root}: not an AffectNet folder (expected train_set/images and val_set/images)")
    records: dict[str, list[Record]] = {"train": [], "test": []}
    index = DatasetIndex(name="affectnet", root=root, class_names=names, records=records)
    own_lnd: dict[str, np.ndarray] = {}
    n_bad_label = 0
    for split, folder in SPLITS.items():
        img_dir, ann_dir = root / folder / "images", root / folder / "annotations"
        if not img_dir.is_dir():
            continue
        for img in sorted(img_dir.iterdir()):
            if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            exp = _read_npy(ann_dir / f"{img.stem}_exp.npy")
            try:
                aff = int(np.asarray(exp).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                n_bad_label += 1
                continue
            label = AFFECTNET_TO_INDEX.get(aff)
            if label is None or label >= num_classes:
                continue  # Contempt with 7 classes, ids 8-10 (not expressions)
            key = img.relative_to(root).as_posix()
            records[split].append(Record(path=str(img), key=key, label=label, split=split))
            lnd = _read_npy(ann_dir / f"{img.stem}_lnd.npy")
            if lnd is not None and np.asarray(lnd).size == 136:
                own_lnd[key] = np.asarray(lnd, np.float32).reshape(68, 2)
    if not any(records.values()):
        raise AucuesError(f"{root}: no labelled AffectNet images found (annotations/<id>_exp.npy)")
    if n_bad_label:
        index.n_missing += n_bad_label
        index.missing_examples.append("unreadable <id>_exp.npy annotation")
    keys = [r.key for recs in records.values() for r in recs]
    index.landmarks, index.landmark_source = load_landmarks(root / CACHE_NAME, keys)
    if not index.landmarks and own_lnd:
        index.landmarks, index.landmark_source = own_lnd, "AffectNet <id>_lnd.npy"
    return index
