"""`aucues import reference --dir ROOT`: every released model folder under a `shared-trained-models`
(or `FG_FER`) tree, one checkpoint each; one model failing never stops the others."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from aucues.errors import AucuesError
from aucues.train.reference_import import CONFIG_FILE, WEIGHTS_FILE, import_reference


def find_model_folders(root) -> list[Path]:
    """Folders holding config_model.yaml or model.pt (a folder with only one of them is listed too,
    so the import reports it as broken instead of silently skipping it), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise AucuesError(f"{root}: no such folder")
    found = {p.parent for name in (CONFIG_FILE, WEIGHTS_FILE) for p in root.rglob(name) if p.is_file()}
    return sorted(found)


def _label_from_path(folder: Path) -> dict:
    """Dataset, method and AU-loss flag from the released layout's path, for rows whose YAML failed:
    FG_FER/<DATASET>/<encoder>/STD_CL/<METHOD>/align_atten_to_heatmap_<True|False>/<leaf>."""
    parts = folder.parts
    au = next((p.rsplit("_", 1)[1] for p in parts if p.startswith("align_atten_to_heatmap_")), None)
    row = {"dataset": "?", "method": "?", "au_loss": None if au is None else au == "True"}
    if len(parts) >= 6 and parts[-2].startswith("align_atten_to_heatmap_"):
        row.update(dataset=parts[-6], method=parts[-3])
    return row


def output_name(folder: Path, au_loss: bool | None) -> str:
    """<leaf>-au.pt / <leaf>-noau.pt: the leaf names the dataset, encoder, method, pooling and
    checkpoint; with and without AU loss share a leaf, so the flag is added."""
    leaf = re.sub(r"[^A-Za-z0-9_.+-]", "_", folder.name) or "model"
    return f"{leaf}-{'au' if au_loss else 'noau' if au_loss is False else 'unknown'}.pt"


def import_tree(root, out_dir, on_step: Callable[[Path], None] | None = None) -> list[dict]:
    """Import every model folder under `root` into `out_dir` -> one row per folder:
    {folder, dataset, method, au_loss, out, ok, error}."""
    from aucues.train.reference_import import read_spec

    folders = find_model_folders(root)
    if not folders:
        raise AucuesError(f"{root}: no released model folders ({CONFIG_FILE} + {WEIGHTS_FILE}) found")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AucuesError(f"{out_dir}: exists and is not a folder (--dir writes one .pt per model into --out)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AucuesError(f"cannot create {out_dir}: {e.strerror or e}") from None
    rows, used = [], set()
    for folder in folders:
        if on_step:
            on_step(folder)
        row = {"folder": str(folder), **_label_from_path(folder), "out": None, "ok": False, "error": None}
        try:
            spec = read_spec(folder)
            row.update(dataset=spec.dataset, method=spec.method, au_loss=spec.au_loss)
            name = output_name(folder, spec.au_loss)
            stem, n = name[:-3], 2
            while name in used:  # two folders with the same leaf and flag (best and last copies...)
                name, n = f"{stem}-{n}.pt", n + 1
            used.add(name)
            import_reference(folder, out_dir / name)
            row.update(out=str(out_dir / name), ok=True)
        except AucuesError as e:
            row["error"] = str(e)
        except Exception as e:  # a bug or an odd file must not stop the other models
            row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        rows.append(row)
    return rows
