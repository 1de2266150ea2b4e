"""Faces found on the fly for a dataset of raw photos (no landmark cache): every image of a split
goes through MediaPipe (aucues.landmarks, largest face) and is framed the way the model being
evaluated expects (aucues.crop.crop_face with its PreprocessConfig: five-point alignment or a
FER2013-style box, at its input size). The crops and their landmarks (in crop pixels, so the AU
maps of docs/method.md §3 are drawn on what the model sees) form a new DatasetIndex that
FERDataset reads like any aligned dataset. Photos without a face are left out and counted as
skipped. Nothing is written into the dataset folder: a cache there would claim the raw photos
are aligned faces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from aucues.train.data.base import DatasetIndex, Record


def crop_split(index: DatasetIndex, split: str, preprocess, work_dir: str | Path,
               progress: bool = False) -> DatasetIndex:
    """A DatasetIndex holding only the records of `split` ("all": every split), their images replaced by face crops in
    work_dir (PNG, lossless) and landmarks for every kept crop."""
    from aucues.crop import crop_face
    from aucues.errors import AucuesError
    from aucues.io import read_image, write_image
    from aucues.landmarks import MediaPipeLandmarker

    work = Path(work_dir)
    records = index.split(split)
    out = DatasetIndex(name=index.name, root=work, class_names=index.class_names,
                       records={s: [] for s in index.records}, n_missing=index.n_missing,
                       missing_by_split=dict(index.missing_by_split),
                       missing_examples=list(index.missing_examples),
                       landmark_source=f"MediaPipe on the fly, {preprocess.crop} crop")

    def skip(r: Record, why: str) -> None:
        out.n_missing += 1
        out.missing_by_split[r.split] = out.missing_by_split.get(r.split, 0) + 1
        if len(out.missing_examples) < 5:
            out.missing_examples.append(f"{r.key} ({why})")

    with MediaPipeLandmarker() as lm, _bar(progress) as bar:
        task = bar.add_task(f"finding faces ({split})", total=len(records))
        for i, r in enumerate(records):
            bar.advance(task)
            try:
                image = read_image(r.path)
                faces = lm.detect(image)
                if not faces:
                    skip(r, "no face")
                    continue
                face = crop_face(image, faces[0].points, preprocess)
            except (AucuesError, OSError) as e:
                skip(r, str(e))
                continue
            path = work / f"{i:06d}.png"
            write_image(path, face.image)
            out.records.setdefault(r.split, []).append(replace(r, path=str(path)))
            out.landmarks[r.key] = np.asarray(face.points, np.float32)
    return out


def _bar(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    disable=not enabled, transient=True)
