"""Per-dataset landmark cache (JSON) and the resumable batch landmarker that fills it.

File: {"format": "aucues-landmarks/1", "items": {key: {"box", "points", "score"} | null}} where a key is
the image path relative to the dataset root with forward slashes and null records "no face" (or an
undecodable image): a processed key is never landmarked again, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

import numpy as np

from aucues.errors import AucuesError
from aucues.io import atomic_write_json
from aucues.landmarks import Face

FORMAT = "aucues-landmarks/1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _key(key) -> str:
    return PurePath(key).as_posix() if isinstance(key, os.PathLike) else str(key)


def _face_to_json(face: Face) -> dict:
    # 2 decimals = 0.01 px: far below landmark error, and keeps a 300k-image cache small.
    return {
        "box": [round(float(v), 2) for v in np.asarray(face.box).reshape(4)],
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(face.points).reshape(68, 2)],
        "score": round(float(face.score), 4),
    }


def _face_from_json(d: dict, where: str) -> Face:
    try:
        box = np.asarray(d["box"], np.float32).reshape(4)
        points = np.asarray(d["points"], np.float32).reshape(68, 2)
        return Face(box=box, points=points, score=float(d["score"]))
    except (KeyError, TypeError, ValueError) as e:
        raise AucuesError(f"{where}: malformed landmark entry ({e})") from None


class LandmarkCache:
    """Key -> Face | None (None = recorded missing face). Loads `path` if it exists; save() is atomic."""

    def __init__(self, path):
        self.path = Path(path)
        self._items: dict[str, dict | None] = {}
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise AucuesError(f"{self.path}: not a readable landmark cache ({e})") from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("items"), dict):
                raise AucuesError(f"{self.path}: not a landmark cache (expected format {FORMAT!r})")
            self._items = doc["items"]

    def __contains__(self, key) -> bool:
        return _key(key) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key) -> Face | None:
        """The cached Face; None for a recorded missing face; KeyError if never processed."""
        k = _key(key)
        d = self._items[k]
        return None if d is None else _face_from_json(d, f"{self.path}[{k}]")

    def points(self, key) -> np.ndarray:
        """(68, 2) float32 landmarks, all NaN for a missing face (what AU maps treat as invalid)."""
        face = self.get(key)
        return np.full((68, 2), np.nan, np.float32) if face is None else face.points

    def set(self, key, face: Face | None) -> None:
        self._items[_key(key)] = None if face is None else _face_to_json(face)

    def keys(self):
        return self._items.keys()

    def save(self) -> None:
        try:
            atomic_write_json(self.path, {"format": FORMAT, "items": self._items})
        except OSError as e:  # the old file, if any, is left intact by the atomic write
            raise AucuesError(f"{self.path}: cannot write the landmark cache ({e.strerror or e})") from None


def list_images(root, extensions=IMAGE_EXTENSIONS, pattern: str | None = None) -> list[str]:
    """Sorted keys (relative, forward slashes) of the images under `root`, by glob or extension."""
    root = Path(root)
    if not root.is_dir():
        raise AucuesError(f"{root}: not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files = root.glob(pattern) if pattern else root.rglob("*")
    return sorted(p.relative_to(root).as_posix() for p in files
                  if p.is_file() and (pattern or p.suffix.lower() in exts))


def landmark_dataset(root, cache_path, extensions=IMAGE_EXTENSIONS, pattern: str | None = None,
                     save_every: int = 200, progress: bool = True, landmarker=None,
                     max_faces: int = 10, min_detection_score: float = 0.5) -> dict:
    """Landmark every image under `root` into the cache at `cache_path`; the largest face is kept.

    Resumable: keys already in the cache are skipped. An undecodable image or an image without a face
    is recorded as missing (null) and counted, never raised. The cache is saved atomically every
    `save_every` new images, at the end, and on interruption. Returns counts: total, skipped (already
    cached), processed (this run), faces, missing (no face), errors (undecodable), and error_examples.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from aucues.io import read_image
    from aucues.landmarks import FaceLandmarker

    root = Path(root)
    keys = list_images(root, extensions, pattern)
    cache = LandmarkCache(cache_path)
    todo = [k for k in keys if k not in cache]
    summary = {"root": str(root), "cache": str(cache_path), "total": len(keys), "skipped": len(keys) - len(todo),
               "processed": 0, "faces": 0, "missing": 0, "errors": 0, "error_examples": []}
    own = landmarker is None
    lm = FaceLandmarker(max_faces=max_faces, min_detection_score=min_detection_score) if own else landmarker
    columns = (TextColumn("landmarks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("landmarks", total=len(todo))
            for i, key in enumerate(todo, 1):
                face = None
                try:
                    faces = lm.detect(read_image(root / key))
                    face = faces[0] if faces else None
                    summary["missing" if face is None else "faces"] += 1
                except (AucuesError, RuntimeError) as e:  # undecodable, too large/small, graph error
                    summary["errors"] += 1
                    if len(summary["error_examples"]) < 10:
                        summary["error_examples"].append(str(e))
                cache.set(key, face)
                summary["processed"] += 1
                bar.advance(task)
                if save_every and i % save_every == 0:
                    cache.save()
    finally:
        # Also on Ctrl-C: what was done so far is kept, and the next run resumes after it.
        cache.save()
        if own:
            lm.close()
    return summary
