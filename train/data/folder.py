"""Generic datasets: an image folder or a CSV.

Folder: `<root>/<split>/<ClassName>/*.jpg` with split in train, val, test and class folders named
after aucues.labels.CLASS_NAMES (case-insensitive; happy/sad/angry/... aliases and 0-6 accepted).
CSV: `<root>/labels.csv`, or `--data` pointing at a .csv file, with rows `path,label[,split]`
(an optional header row `path,label,split`); paths relative to the CSV's folder; label a class name
or index; rows without a split are train.

Landmarks: `aucues_landmarks68.sqlite` in the root (keys = paths relative to the root) when present,
else none (AU maps invalid, CE only). A `val` split, when present, replaces the held-out validation.
"""

from __future__ import annotations

import csv
from pathlib import Path

from aucues.errors import AucuesError
from aucues.labels import NUM_CLASSES, class_index, class_names
from aucues.train.data.base import CACHE_NAME, DatasetIndex, Record, finish_index

SPLITS = ("train", "val", "test")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CSV_NAME = "labels.csv"


def _label(value: str, names, where: str) -> int:
    try:
        return class_index(value.strip(), names)
    except AucuesError as e:
        raise AucuesError(f"{where}: {e}") from None


def read_csv(csv_path: Path, num_classes: int = NUM_CLASSES) -> DatasetIndex:
    root = csv_path.parent
    names = class_names(num_classes)
    records: dict[str, list[Record]] = {s: [] for s in SPLITS}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if n == 1 and row[0].lower() == "path":
                continue  # header
            if len(row) < 2:
                raise AucuesError(f"{csv_path}:{n}: expected path,label[,split], got {','.join(row)!r}")
            split = row[2].lower() if len(row) > 2 and row[2] else "train"
            if split not in SPLITS:
                raise AucuesError(f"{csv_path}:{n}: split must be one of {', '.join(SPLITS)}, got {split!r}")
            p = Path(row[0])
            path = p if p.is_absolute() else root / p
            try:
                key = path.relative_to(root).as_posix()
            except ValueError:
                key = path.as_posix()
            records[split].append(Record(str(path), key, _label(row[1], names, f"{csv_path}:{n}"), split))
    return _finish("csv", root, names, records)


def read_folder(root: str | Path, num_classes: int = NUM_CLASSES) -> DatasetIndex:
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_csv(root, num_classes)
    if (root / CSV_NAME).is_file():
        return read_csv(root / CSV_NAME, num_classes)
    if not root.is_dir():
        raise AucuesError(f"{root}: no such folder")
    names = class_names(num_classes)
    records: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        sdir = root / split
        if not sdir.is_dir():
            continue
        for cdir in sorted(d for d in sdir.iterdir() if d.is_dir()):
            label = _label(cdir.name, names, f"{cdir}")
            for img in sorted(cdir.rglob("*")):
                if img.is_file() and img.suffix.lower() in IMAGE_EXT:
                    key = img.relative_to(root).as_posix()
                    records[split].append(Record(str(img), key, label, split))
    if not any(records.values()):
        raise AucuesError(f"{root}: no images found as <split>/<ClassName>/*.jpg (splits {', '.join(SPLITS)}) "
                          f"and no {CSV_NAME}")
    return _finish("folder", root, names, records)


def _finish(name, root, names, records) -> DatasetIndex:
    return finish_index(name, root, names, records, root / CACHE_NAME, "none of the listed images exist")
