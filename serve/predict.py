"""`aucues predict`: images, folders and videos -> the server -> JSON lines and overlay PNGs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from aucues.errors import AucuesError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Item:
    name: str                  # path, or "path@1.50s" for a video frame
    data: bytes | None = None
    error: str | None = None
    stem: str = ""
    skipped: int = 0           # > 0: not an input but a note that a folder had this many other files


def _video_frames(path: Path, fps: float) -> Iterator[Item]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        yield Item(str(path), error="cannot open the video (unsupported codec or not a video)")
        return
    try:
        src_fps = cap.get(cv2.CAP_PROP_FPS)
        src_fps = src_fps if src_fps and src_fps > 0 else 25.0
        step = max(1, round(src_fps / fps))
        i = n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                t = i / src_fps
                ok, enc = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                name = f"{path}@{t:.2f}s"
                if ok:
                    yield Item(name, enc.tobytes(), stem=f"{path.stem}_t{t:07.2f}s")
                else:
                    yield Item(name, error="cannot encode the frame")
                n += 1
            i += 1
        if n == 0:
            yield Item(str(path), error="no frames could be read from the video")
    finally:
        cap.release()


def _folder_files(folder: Path) -> tuple[list[Path], int]:
    """(images and videos under `folder`, sorted; how many other files were passed over). A dangling
    symlink with an image or video name is kept, so reading it reports it instead of a silent skip."""
    files, other = [], 0
    for f in folder.rglob("*"):
        if f.is_dir():
            continue
        if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
            files.append(f)
        else:
            other += 1
    return sorted(files), other


def iter_inputs(paths: list[str | Path], fps: float = 2.0) -> Iterator[Item]:
    """Every image and sampled video frame under `paths` (folders are walked, sorted). Inputs are
    read only from regular files with a size cap (aucues.io.read_file_bytes): a FIFO, a device such
    as /dev/zero, a dangling symlink or a huge file is one error item, never a hang. Files in a folder
    that are neither images nor videos are counted in one `skipped` note per folder."""
    import os
    import stat

    from aucues.io import read_file_bytes

    if fps <= 0:
        raise AucuesError(f"--fps must be > 0, got {fps}")
    for raw in paths:
        p = Path(raw)
        if not p.exists() and not p.is_symlink():
            yield Item(str(p), error="no such file or directory")
            continue
        if p.is_dir():
            files, other = _folder_files(p)
            if other:
                yield Item(str(p), skipped=other)
            if not files:
                yield Item(str(p), error="no images or videos in this folder")
        else:
            files = [p]
        for f in files:
            if f.suffix.lower() in VIDEO_EXTS:
                try:
                    regular = stat.S_ISREG(os.stat(f).st_mode)
                except OSError:
                    regular = False
                if not regular:  # cv2 would block on a FIFO or read a device forever
                    yield Item(str(f), error="not a regular file (dangling symlink, FIFO or device)")
                else:
                    yield from _video_frames(f, fps)
                continue
            try:
                yield Item(str(f), read_file_bytes(f), stem=f.stem)
            except AucuesError as e:
                msg = str(e)
                yield Item(str(f), error=msg[len(str(f)) + 2:] if msg.startswith(f"{f}: ") else msg)


def summary_line(name: str, result: dict) -> str:
    from aucues.serve.result import evidence_text

    label = result["label"]
    s = f"{name}: {label} {result['probabilities'][label]:.2f}"
    ev = result.get("au_evidence") or []
    if ev:
        s += " | " + evidence_text(ev)
    score = result.get("interpretability_score")
    s += f" | AU alignment {score:.2f}" if score is not None else " | AU alignment n/a (no AU map)"
    if result.get("num_faces", 1) > 1:
        s += f" | {result['num_faces']} faces, largest used"
    return s


def _chunks(items: Iterator[Item], n: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_predict(paths: list[str | Path], *, url: str | None = None, protocol: str = "http",
                overlays: str | Path | None = None, as_json: bool = False, fps: float = 2.0,
                emit: Callable[[str], None] = print, timeout: float = 60.0, batch: int = 1) -> tuple[int, int]:
    """Predict every input; returns (ok, failed). Raises ServerUnreachable if there is no server.
    `batch` > 1 sends that many images per request; every image is still reported on its own line,
    with its own answer or its own error (the server's per-row status)."""
    from aucues.io import write_image
    from aucues.serve.client import AucuesClient, PredictError, ServerUnreachable
    from aucues.serve.overlay import render_overlay

    if batch < 1:
        raise AucuesError(f"--batch must be >= 1, got {batch}")
    out_dir = Path(overlays) if overlays else None
    if out_dir is not None:  # checked before any request: a bad --overlays is one line, not a traceback
        if out_dir.exists() and not out_dir.is_dir():
            raise AucuesError(f"--overlays {out_dir}: exists and is not a folder")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AucuesError(f"--overlays {out_dir}: cannot create the folder ({e.strerror or e})") from None
    ok = failed = 0
    used: set[str] = set()
    with AucuesClient(url, protocol, timeout=timeout) as client:
        client.check_ready()
        spec = client.spec
        for chunk in _chunks(iter_inputs(paths, fps), batch):
            good = [it for it in chunk if it.error is None and not it.skipped]
            answers: dict[int, object] = {}
            if good:
                try:
                    rows = client.predict_many([it.data for it in good], maps=out_dir is not None)
                except ServerUnreachable:
                    raise
                except PredictError as e:  # the request as a whole (e.g. over the model's max batch)
                    rows = [e] * len(good)
                answers = {id(it): r for it, r in zip(good, rows)}
            for item in chunk:
                if item.skipped:
                    reason = "neither images nor videos"
                    emit(json.dumps({"input": item.name, "skipped": item.skipped, "reason": reason}) if as_json
                         else f"{item.name}: {item.skipped} file{'s' if item.skipped != 1 else ''} skipped ({reason})")
                    continue
                pred = answers.get(id(item))
                err = item.error if item.error is not None else (str(pred) if isinstance(pred, PredictError)
                                                                 else None)
                if err is not None:
                    failed += 1
                    emit(json.dumps({"input": item.name, "error": err}) if as_json
                         else f"{item.name}: error: {err}")
                    continue
                ok += 1
                res = dict(pred.result)
                if out_dir is not None:
                    stem = item.stem or Path(item.name).stem
                    name, k = stem, 1
                    while name in used:
                        k += 1
                        name = f"{stem}_{k}"
                    used.add(name)
                    img = render_overlay(pred.maps["aligned_face"], pred.maps.get("cam"), pred.maps["attention"],
                                         np.asarray(res["landmarks"], np.float32), res,
                                         spec.class_names.index(res["label"]), spec.preprocess.codebook,
                                         spec.attention_layer)
                    path = out_dir / f"{name}.png"
                    write_image(path, img)
                    res["overlay"] = str(path)
                emit(json.dumps({"input": item.name, **res}) if as_json else summary_line(item.name, res))
    return ok, failed
