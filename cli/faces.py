"""`aucues landmarks`: faces and 68 landmarks of photos, or a whole dataset into a landmark cache.

    aucues landmarks IMAGE... [--json] [--draw OUT.png]
    aucues landmarks --batch DIR [--cache FILE] [--json]

--draw with one image writes OUT.png; with several it writes OUT_0.png, OUT_1.png, ... (the index of
the image on the command line; images that cannot be read get no drawing). An image that cannot be
read or has no face prints one `error: PATH: ...` line; the others are still reported, and the exit
code is 1 if any image failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from aucues.cli.common import console, err_console, fail

DEFAULT_CACHE_NAME = "aucues_landmarks68.sqlite"  # = aucues.landmark_cache.CACHE_NAME (not imported: startup)



def _draw(image, faces, out: Path) -> None:
    import cv2
    import numpy as np

    from aucues.errors import AucuesError
    from aucues.io import write_image

    canvas = np.ascontiguousarray(image.copy())
    for f in faces:
        side = float(max(f.box[2] - f.box[0], f.box[3] - f.box[1]))
        t = max(1, int(round(side / 100)))  # line width grows with the face, stays visible on large ones
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), t, cv2.LINE_AA)
        cv2.putText(canvas, f"{f.score:.2f}", (x0, max(0, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t,
                    (0, 255, 0), t, cv2.LINE_AA)
        for x, y in f.points:
            cv2.circle(canvas, (int(round(x)), int(round(y))), t + 1, (255, 0, 0), -1, cv2.LINE_AA)
    try:
        write_image(out, canvas)
    except (OSError, cv2.error) as e:  # unwritable folder, unknown suffix
        msg = getattr(e, "strerror", None) or str(e).strip().splitlines()[-1]
        raise AucuesError(f"{out}: cannot write the drawing ({msg})") from None


def _draw_path(draw: Path, index: int, count: int) -> Path:
    if count == 1:
        return draw
    return draw.with_name(f"{draw.stem}_{index}{draw.suffix or '.png'}")


def _face_json(f) -> dict:
    return {"box": [round(float(v), 2) for v in f.box], "score": round(float(f.score), 4),
            "points": [[round(float(x), 2), round(float(y), 2)] for x, y in f.points]}


def _table(path: str, faces):
    from rich.table import Table

    # The path goes in a caption line above, not the table title: rich wraps titles to the table width.
    table = Table()
    for col in ("#", "box x0,y0,x1,y1", "size", "score"):
        table.add_column(col, justify="right" if col != "box x0,y0,x1,y1" else "left")
    for i, f in enumerate(faces):
        x0, y0, x1, y1 = (float(v) for v in f.box)
        table.add_row(str(i), f"{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}", f"{x1 - x0:.0f}x{y1 - y0:.0f}", f"{f.score:.3f}")
    return table


def _run_batch(batch: Path, cache: Optional[Path], as_json: bool, max_faces: int, min_score: float,
               landmarker: str = "mediapipe", refresh: bool = False) -> None:
    from aucues.landmark_batch import landmark_dataset

    cache = cache or batch / DEFAULT_CACHE_NAME
    summary = landmark_dataset(batch, cache, progress=not as_json, max_faces=max_faces,
                               min_detection_score=min_score, landmarker=landmarker, refresh=refresh)
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    console.print(f"{summary['total']} images: {summary['processed']} landmarked now "
                  f"({summary['faces']} with a face, {summary['missing']} without, {summary['errors']} unreadable), "
                  f"{summary['skipped']} already cached"
                  + (f", {summary['ignored']} other files ignored" if summary["ignored"] else "")
                  + f" -> {summary['cache']}"
                  + (f" (cleared {summary['refreshed']} entries of another landmark source)" if summary["refreshed"] else ""),
                  highlight=False, soft_wrap=True)
    for e in summary["error_examples"]:
        err_console.print(f"[yellow]warning:[/] {e}", highlight=False, soft_wrap=True)


def landmarks(
    images: Optional[List[Path]] = typer.Argument(None, help="Image files (JPEG, PNG, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write an overlay PNG (boxes + 68 points); "
                                        "with several images OUT_<i>.png per image."),
    batch: Optional[Path] = typer.Option(None, "--batch", help="Landmark every image under this folder."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=f"Landmark cache of --batch "
                                         f"(default DIR/{DEFAULT_CACHE_NAME}); resumes if it exists."),
    save_every: int = typer.Option(200, "--save-every", min=1, hidden=True,
                                   help="Ignored: every image is committed to the cache as it is done."),
    max_faces: int = typer.Option(10, "--max-faces", min=1, help="At most this many faces per image."),
    min_score: float = typer.Option(0.5, "--min-score", min=0.0, max=1.0, help="Face detection threshold."),
    landmarker: str = typer.Option("mediapipe", "--landmarker", help="mediapipe (the reference) or onnx (its "
                                   "networks converted to ONNX, run batched by ONNX Runtime)."),
    refresh: bool = typer.Option(False, "--refresh", help="With --batch: landmark every image again when the "
                                 "cache was made by another landmark source (e.g. an older 468 -> 68 mapping)."),
) -> None:
    """Find faces and their 68 iBUG landmarks (MediaPipe face mesh), or fill a dataset's landmark cache."""
    from aucues.errors import AucuesError

    if batch is not None:
        if images:
            fail("give either IMAGE... or --batch DIR, not both")
        _run_batch(batch, cache, as_json, max_faces, min_score, landmarker, refresh)
        return
    if not images:
        fail("no images given (usage: aucues landmarks IMAGE... or aucues landmarks --batch DIR)")
    if cache is not None:
        fail("--cache goes with --batch DIR")

    from aucues.io import read_image
    from aucues.landmarks import make_landmarker

    results, failures = [], 0
    with make_landmarker(landmarker, max_faces=max_faces, min_detection_score=min_score) as lm:
        for i, path in enumerate(images):
            try:
                image = read_image(path)
                faces = lm.detect(image)
            except (AucuesError, RuntimeError) as e:  # RuntimeError: a MediaPipe graph failure
                msg = str(e) if str(path) in str(e) else f"{path}: {e}"
                results.append({"path": str(path), "error": msg})
                err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
                failures += 1
                continue
            if draw is not None:
                _draw(image, faces, _draw_path(draw, i, len(images)))
            if not faces:
                results.append({"path": str(path), "error": f"{path}: no face found", "faces": []})
                err_console.print(f"[bold red]error:[/] {path}: no face found", highlight=False, soft_wrap=True)
                failures += 1
                continue
            results.append({"path": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
                            "faces": [_face_json(f) for f in faces]})
            if not as_json:
                console.print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}", highlight=False,
                              soft_wrap=True)
                console.print(_table(str(path), faces))
    if as_json:
        print(json.dumps({"images": results}, indent=1))
    if failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("landmarks")(landmarks)
