"""RAF-DB's folder layout (docs/method.md §1, §10), typed once: the real dataset's reader, `data
prepare rafdb`, the synthetic benchmark (which is written in the same layout) and the demo use it.

    <root>/basic/EmoLabel/list_patition_label.txt          `train_00001.jpg 5` (RAF-DB ids 1..7)
    <root>/basic/Image/original/<stem>.jpg                  the photos
    <root>/basic/Annotation/boundingbox/<stem>_boxes.txt    face boxes
    <root>/basic/Image/aligned/<stem>_aligned.jpg           RAF-DB's own aligned faces
    <root>/basic/Image/aucues_aligned/<stem>_aligned.jpg    aucues's crops (`aucues data prepare rafdb`)
"""

from __future__ import annotations

from pathlib import Path

from aucues.errors import AucuesError
from aucues.labels import RAFDB_TO_INDEX

LABEL_FILE = "basic/EmoLabel/list_patition_label.txt"
ORIGINAL_DIR = "basic/Image/original"
BOX_DIR = "basic/Annotation/boundingbox"
RAF_ALIGNED_DIR = "basic/Image/aligned"
AUCUES_ALIGNED_DIR = "basic/Image/aucues_aligned"


def aligned_key(folder: str, name: str) -> str:
    """('basic/Image/aligned', 'train_00001.jpg') -> 'basic/Image/aligned/train_00001_aligned.jpg'."""
    return f"{folder}/{Path(name).stem}_aligned.jpg"


def read_label_file(path: Path) -> list[tuple[str, int]]:
    """(file name, aucues class index) per line; a malformed line is a one-line error with its number."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            name, raf = parts[0], int(parts[1])
            rows.append((name, RAFDB_TO_INDEX[raf]))
        except (IndexError, ValueError, KeyError):
            raise AucuesError(f"{path}:{n}: expected '<file>.jpg <RAF-DB id 1-7>', got {line.strip()!r}") from None
    if not rows:
        raise AucuesError(f"{path}: no labelled images")
    return rows
