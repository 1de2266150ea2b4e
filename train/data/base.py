"""Dataset records, the torch Dataset that loads an image and builds its AU map on the fly, the
stratified train/validation split, and the collate function that drops unreadable images.

Every reader (rafdb, affectnet, folder/csv) produces a `DatasetIndex`: records per split and the
landmarks of the images that have them. `FERDataset` turns records into training samples:
image -> AU map from cached landmarks + label (aucues.au_maps.au_map at the image's size) -> the
paired transform (geometric ops move image and map together, photometric ones touch the image).

Augmentation randomness is a pure function of (seed, epoch, sample index): each sample draws from
its own forked torch generator, so a run's augmentations do not depend on the number of loader
workers, on DDP ranks, or on where a resumed run restarted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from aucues.errors import AucuesError
from aucues.labels import NUM_CLASSES
from aucues.landmark_cache import CACHE_NAME  # noqa: F401 (re-exported: the readers' cache file name)

log = logging.getLogger("aucues.data")



@dataclass(frozen=True)
class Record:
    path: str    # absolute path of the image file
    key: str     # path relative to the dataset root, forward slashes (the landmark-cache key)
    label: int   # class index (aucues.labels order; 7 = Contempt with 8 classes)
    split: str   # "train", "val" or "test"


@dataclass
class DatasetIndex:
    """What a reader found: records per split, their landmarks, and what was left out."""

    name: str
    root: Path
    class_names: tuple[str, ...]
    records: dict[str, list[Record]]
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (68, 2); absent = none
    n_missing: int = 0                   # listed images whose file does not exist
    missing_by_split: dict[str, int] = field(default_factory=dict)
    missing_examples: list[str] = field(default_factory=list)
    landmark_source: str = "none"
    # the AlignTemplate the images were aligned with, when the data records it (aucues.synth output,
    # `aucues data prepare rafdb`); None = unknown (the data's own crops). Training copies it into
    # the model's PreprocessConfig; evaluate refuses a model trained on another crop.
    align_template: object = None

    def split(self, name: str) -> list[Record]:
        if name == "all":
            return [r for recs in self.records.values() for r in recs]
        recs = self.records.get(name)
        if not recs:
            have = ", ".join(k for k, v in self.records.items() if v) or "none"
            raise AucuesError(f"{self.name} dataset at {self.root} has no '{name}' split (has: {have})")
        return recs

    def summary(self) -> str:
        parts = [f"{k} {len(v)}" for k, v in self.records.items() if v]
        with_lm = sum(1 for recs in self.records.values() for r in recs if r.key in self.landmarks)
        total = sum(len(v) for v in self.records.values())
        s = f"{self.name} at {self.root}: {', '.join(parts)}; landmarks for {with_lm}/{total} ({self.landmark_source})"
        if self.n_missing:
            s += f"; {self.n_missing} listed images missing (e.g. {self.missing_examples[0]})"
        return s


def load_landmarks(cache_path: Path, keys) -> tuple[dict[str, np.ndarray], str]:
    """Landmarks of `keys` from a landmark cache (SQLite, or the legacy JSON beside it; none: no
    landmarks, all maps invalid). Read-only, decoded in one pass, closed before workers fork."""
    from aucues.landmark_cache import LandmarkCache, cache_exists

    if not cache_exists(cache_path):
        return {}, "none"
    from aucues.landmark_cache import describe_source, other_mesh_mapping

    with LandmarkCache(cache_path, readonly=True) as cache:
        out = cache.points_many(keys)  # finite float32 (68, 2) per key with a face
        source = str(cache.path if cache.path.is_file() else cache.legacy_path)
        made_by = cache.source
    if out and other_mesh_mapping(made_by):
        # still usable, but said where the dataset summary is printed: the points may follow an older
        # 468 -> 68 mapping than the landmarker that serves the model will use
        source += f"; WARNING: made by {describe_source(made_by)}; `aucues data prepare ... --refresh` redoes them"
    return out, source


def check_existing(records: list[Record], index: DatasetIndex) -> list[Record]:
    """Drop records whose image file is missing, counting them on the index (not fatal)."""
    kept = []
    for r in records:
        if Path(r.path).is_file():
            kept.append(r)
        else:
            index.n_missing += 1
            index.missing_by_split[r.split] = index.missing_by_split.get(r.split, 0) + 1
            if len(index.missing_examples) < 5:
                index.missing_examples.append(r.key)
    return kept


def finish_index(name: str, root: Path, class_names, records: dict[str, list[Record]], cache_path: Path,
                 nothing_found: str) -> DatasetIndex:
    """The index of a reader: records whose image is missing dropped (and counted), landmarks from
    the cache; `nothing_found` is the error when no listed image exists."""
    index = DatasetIndex(name=name, root=root, class_names=class_names, records=records)
    for split in records:
        records[split] = check_existing(records[split], index)
    if not any(records.values()):
        example = f" (e.g. {index.missing_examples[0]})" if index.missing_examples else ""
        raise AucuesError(f"{root}: {nothing_found}{example}")
    keys = [r.key for recs in records.values() for r in recs]
    index.landmarks, index.landmark_source = load_landmarks(cache_path, keys)
    return index


def train_val_split(records: list[Record], val_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Stratified, seeded hold-out of `val_fraction` of each class (model selection, never the test set).
    Every class with >= 2 samples gives at least one validation sample when val_fraction > 0."""
    if val_fraction <= 0:
        return list(records), []
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_label.setdefault(r.label, []).append(i)
    val_idx: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val_idx.update(int(i) for i in rng.permutation(idx)[:n_val])
    train = [r for i, r in enumerate(records) if i not in val_idx]
    val = [r for i, r in enumerate(records) if i in val_idx]
    return train, val


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2 ** 63 - 1)


class FERDataset(Dataset):
    """Records -> {"image" (3,S,S) float, "label", "au_map" (S,S) float in [0,1], "valid", "index"}.

    `transform` is a PairTransform (train or eval, train.data.transforms). `map_at_output=True`
    (evaluation) draws the map directly at the output size from rescaled landmarks instead of
    resizing a native-size map: the metric's map is exact, not interpolated. An unreadable image
    returns None (dropped and counted by `collate`)."""

    def __init__(self, records: list[Record], landmarks: dict[str, np.ndarray], transform,
                 map_kind: str = "class", codebook: str = "paper", seed: int = 0,
                 map_at_output: bool = False):
        self.records = list(records)
        self.labels = np.array([r.label for r in self.records], np.int64)
        self.points = np.full((len(self.records), 68, 2), np.nan, np.float32)
        for i, r in enumerate(self.records):
            p = landmarks.get(r.key)
            if p is not None:
                self.points[i] = p
        self.transform = transform
        self.map_kind = map_kind
        self.codebook = codebook
        self.seed = int(seed)
        self.epoch = 0
        self.map_at_output = map_at_output

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def n_with_landmarks(self) -> int:
        return int(np.isfinite(self.points).all(axis=(1, 2)).sum())

    def build_map(self, i: int, h: int, w: int, size: int | None = None) -> tuple[np.ndarray, bool]:
        """AU map of record i for an h x w image (size=None) or for the image resized to size x size."""
        from aucues.au_maps import au_map

        label = int(self.labels[i])
        pts = self.points[i]
        if label >= NUM_CLASSES or not np.isfinite(pts).all():  # Contempt has no AUs; no landmarks
            s = size or h
            return np.zeros((s, s) if size else (h, w), np.float32), False
        if size is not None:
            scaled = pts * np.array([size / w, size / h], np.float32)
            return au_map(scaled, label, size, kind=self.map_kind, variant=self.codebook)
        if h == w:
            return au_map(pts, label, h, kind=self.map_kind, variant=self.codebook)
        # Non-square image: draw on a square of the longer side, then resize onto the image.
        import cv2

        s = max(h, w)
        m, ok = au_map(pts * np.array([s / w, s / h], np.float32), label, s, kind=self.map_kind,
                       variant=self.codebook)
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR), ok

    def __getitem__(self, i: int):
        from aucues.io import read_image

        r = self.records[i]
        try:
            image = read_image(r.path)
        except (AucuesError, OSError) as e:
            return {"skipped": r.key, "error": str(e)}
        h, w = image.shape[:2]
        size = self.transform.image_size if self.map_at_output else None
        amap, valid = self.build_map(i, h, w, size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_sample_seed(self.seed, self.epoch, i))
            x, m = self.transform(image, amap, map_is_final=self.map_at_output)
        return {"image": x, "label": int(self.labels[i]), "au_map": m, "valid": bool(valid), "index": i}


def collate(batch: list[dict]) -> dict:
    """Stack good samples; unreadable ones are dropped and reported as batch["skipped"] (keys)."""
    good = [b for b in batch if "skipped" not in b]
    skipped = [b["skipped"] for b in batch if "skipped" in b]
    errors = [b["error"] for b in batch if "skipped" in b]
    if not good:
        return {"image": None, "n": 0, "skipped": skipped, "errors": errors}
    return {
        "image": torch.stack([b["image"] for b in good]),
        "label": torch.tensor([b["label"] for b in good], dtype=torch.long),
        "au_map": torch.stack([b["au_map"] for b in good]),
        "valid": torch.tensor([b["valid"] for b in good], dtype=torch.bool),
        "index": torch.tensor([b["index"] for b in good], dtype=torch.long),
        "n": len(good),
        "skipped": skipped,
        "errors": errors,
    }


class SkipLog:
    """Counts unreadable images across batches; logs each new one once (not once per epoch)."""

    def __init__(self, logger: logging.Logger = log):
        self.seen: set[str] = set()
        self.logger = logger

    def update(self, batch: dict) -> None:
        for key, err in zip(batch.get("skipped", ()), batch.get("errors", ())):
            if key not in self.seen:
                self.seen.add(key)
                if len(self.seen) <= 5:
                    self.logger.warning("skipping unreadable image: %s", err)
                elif len(self.seen) == 6:
                    self.logger.warning("more unreadable images are skipped; the count is reported at the end")

    @property
    def count(self) -> int:
        return len(self.seen)
