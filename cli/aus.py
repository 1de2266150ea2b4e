"""`aucues aus`: the AU regions and heatmap of an expression on a photo's largest face.

    aucues aus IMAGE --expression NAME [--draw OUT.png] [--kind class|generic|per_class|landmarks]
               [--codebook paper|reference] [--size 224] [--model MODEL.pt|.onnx] [--json]

The face is found with MediaPipe (aucues.landmarks), aligned to a size x size crop (aucues.align,
the default PreprocessConfig's template, or --model's: the crop that model sees) and
the map is built on that crop (aucues.au_regions / aucues.au_maps, docs/method.md §3-4). --draw writes the crop with the
heatmap blended on it and each AU region outlined and labelled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from aucues.cli.common import console


def _rows(points, label, size, codebook):
    from aucues.au_regions import au_ellipses, au_region_masks
    from aucues.codebook import AU_NAMES

    masks = au_region_masks(points, label, size, codebook)
    return [{"au": au, "name": AU_NAMES[au], "in_crop": bool(m.any()),
             "ellipses": [[round(v, 2) for v in e] for e in au_ellipses(points, au, size)]}
            for au, m in masks.items()]


def _model_preprocess(path: Path):
    """The PreprocessConfig of a checkpoint or an exported ONNX model."""
    if path.suffix.lower() == ".onnx":
        from aucues.export.metadata import preprocess_from_onnx

        return preprocess_from_onnx(path)
    from aucues.train.checkpoint import load_checkpoint

    return load_checkpoint(path)[0].preprocess


def aus(
    image: Path = typer.Argument(..., help="Photo with a face (JPEG, PNG, ...); the largest face is used."),
    expression: str = typer.Option(..., "--expression", "-e", help="Expression name (e.g. Happiness) or class index."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write a PNG overlay: heatmap + labelled AU regions."),
    kind: str = typer.Option("class", "--kind", help="Map kind: class, generic, per_class or landmarks."),
    codebook: Optional[str] = typer.Option(None, "--codebook", help="Codebook variant: paper (default) or reference."),
    size: Optional[int] = typer.Option(None, "--size", help="Aligned crop size in pixels (default: the "
                                       "preprocessing image size, 224)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A checkpoint (.pt) or exported model (.onnx): "
                                         "use its crop (alignment template), size and codebook."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
) -> None:
    """Show which Action Units an expression uses and where they lie on a face (docs/method.md §2-4)."""
    from aucues.au_drawing import draw_overlay
    from aucues.au_maps import KINDS, au_map
    from aucues.codebook import GENERIC_AUS, VARIANTS, class_aus
    from aucues.errors import AucuesError, NoFaceError
    from aucues.labels import CLASS_NAMES, class_index
    from aucues.preprocessing import PreprocessConfig

    # Validate every argument before the (slower) face search.
    defaults = PreprocessConfig() if model is None else _model_preprocess(model)
    size = defaults.image_size if size is None else size
    codebook = codebook or defaults.codebook
    label = class_index(expression)
    if kind not in KINDS:
        raise AucuesError(f"unknown --kind '{kind}'; choose one of: {', '.join(KINDS)}")
    if codebook not in VARIANTS:
        raise AucuesError(f"unknown --codebook '{codebook}'; choose one of: {', '.join(VARIANTS)}")
    if not 16 <= size <= 4096:
        raise AucuesError(f"--size must be between 16 and 4096 px, got {size}")
    if draw is not None and draw.suffix.lower() not in ("", ".png"):
        raise AucuesError(f"--draw writes a PNG; got '{draw}'")

    from aucues.align import align_face
    from aucues.io import read_image, write_image
    from aucues.landmarks import MediaPipeLandmarker

    rgb = read_image(image)
    with MediaPipeLandmarker() as lm:
        faces = lm.detect(rgb)
    if not faces:
        raise NoFaceError(f"{image}: no face found")
    face = faces[0]
    aligned = align_face(rgb, face.points, size=size, template=defaults.template)
    heat, valid = au_map(aligned.points, label, size, kind=kind, variant=codebook)
    if kind == "per_class":
        heat = heat[label]
    expr_aus = class_aus(label, codebook)
    rows = _rows(aligned.points, label, size, codebook)

    if draw is not None:
        draw = draw if draw.suffix else draw.with_suffix(".png")
        shown = GENERIC_AUS if kind == "generic" else expr_aus
        write_image(draw, draw_overlay(aligned.image, heat if valid else None, aligned.points, shown))

    name = CLASS_NAMES[label]
    if as_json:
        print(json.dumps({
            "image": str(image), "expression": name, "label": label, "codebook": codebook, "kind": kind,
            "size": size, "faces": len(faces),
            "face": {"box": [round(float(v), 2) for v in face.box], "score": round(float(face.score), 4)},
            "valid": bool(valid), "aus": rows, "draw": str(draw) if draw is not None else None,
        }, indent=1))
        return

    from rich.table import Table

    note = "" if valid else " (no map: Neutral has no AUs)" if not expr_aus and kind == "class" else " (no valid map)"
    table = Table(title=f"{name} ({codebook} codebook): {len(expr_aus)} AUs; {kind} map {size}x{size}"
                  f"{note}", title_justify="left")
    for col in ("AU", "name", "ellipses (cx, cy, ax, ay) in the crop", "in crop"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"AU{r['au']}", r["name"], "  ".join(f"({', '.join(f'{v:.0f}' for v in e)})"
                                                          for e in r["ellipses"]), "yes" if r["in_crop"] else "no")
    console.print(table)
    if len(faces) > 1:
        console.print(f"{len(faces)} faces found; used the largest.", highlight=False)
    if draw is not None:
        console.print(f"overlay -> {draw}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("aus")(aus)
