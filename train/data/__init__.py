"""Datasets: readers (RAF-DB, synthetic benchmark, AffectNet, folder/CSV), the dataset that builds AU
maps on the fly, paired transforms, and RAF-DB preparation (train.data.prepare).

    index = open_dataset("rafdb", root)                   # DatasetIndex: records per split + landmarks
    train, val = train_val_split(index.split("train"), 0.1, seed)
    ds = FERDataset(train, index.landmarks, build_transform(preprocess, train=True))
"""

from __future__ import annotations

from pathlib import Path

from aucues.errors import AucuesError
from aucues.labels import NUM_CLASSES
from aucues.train.data.base import (CACHE_NAME, DatasetIndex, FERDataset, Record, SkipLog, collate,
                             train_val_split)
from aucues.train.data.transforms import EvalTransform, TrainTransform, build_transform

DATASETS = ("rafdb", "affectnet", "folder", "synthetic")


def open_dataset(dataset: str, root: str | Path, num_classes: int = NUM_CLASSES) -> DatasetIndex:
    """Read a dataset's index (no image is decoded here). `synthetic` is RAF-DB's layout."""
    root = Path(root)
    if not root.exists():
        raise AucuesError(f"{root}: no such dataset folder")
    if dataset in ("rafdb", "synthetic"):
        from aucues.train.data.rafdb import read_rafdb

        if num_classes != NUM_CLASSES:
            raise AucuesError(f"{dataset} has 7 classes; num_classes={num_classes} is for AffectNet's Contempt")
        return read_rafdb(root, name=dataset)
    if dataset == "affectnet":
        from aucues.train.data.affectnet import read_affectnet

        return read_affectnet(root, num_classes)
    if dataset == "folder":
        from aucues.train.data.folder import read_folder

        return read_folder(root, num_classes)
    raise AucuesError(f"unknown dataset '{dataset}'; choose one of: {', '.join(DATASETS)}")


__all__ = ["open_dataset", "DatasetIndex", "Record", "FERDataset", "collate", "SkipLog", "train_val_split",
           "build_transform", "TrainTransform", "EvalTransform", "CACHE_NAME", "DATASETS"]
