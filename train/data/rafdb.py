"""RAF-DB (basic) in its standard layout, and the synthetic AU benchmark that uses the same layout.

    <root>/basic/EmoLabel/list_patition_label.txt   lines `train_00001.jpg 5` (RAF-DB ids 1..7)
    <root>/basic/Image/aucues_aligned/<stem>_aligned.jpg   written by `aucues data prepare rafdb`
    <root>/basic/Image/aligned/<stem>_aligned.jpg          RAF-DB's own aligned faces (fallback)
    <root>/basic/aucues_landmarks68.sqlite                   LandmarkCache keyed by image path from root

`train_*` files are the train split, `test_*` the test split. RAF ids map with RAFDB_TO_INDEX.
"""

from __future__ import annotations

from pathlib import Path

from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES
from aucues.rafdb_layout import (AUCUES_ALIGNED_DIR, LABEL_FILE, RAF_ALIGNED_DIR,  # noqa: F401 (re-exported)
                                 aligned_key, read_label_file)
from aucues.train.data.base import CACHE_NAME, DatasetIndex, Record, finish_index

ALIGNED_DIRS = (AUCUES_ALIGNED_DIR, RAF_ALIGNED_DIR)  # ours first: `data prepare` wrote them
RAF_CACHE = f"basic/{CACHE_NAME}"


def image_dir(root: Path) -> str:
    """Our own aligned crops when `data prepare` wrote them, else RAF-DB's."""
    ours = root / ALIGNED_DIRS[0]
    if ours.is_dir() and any(ours.iterdir()):
        return ALIGNED_DIRS[0]
    return ALIGNED_DIRS[1]


def read_rafdb(root: str | Path, name: str = "rafdb") -> DatasetIndex:
    root = Path(root)
    labels = root / LABEL_FILE
    if not labels.is_file():
        raise AucuesError(f"{root}: not a RAF-DB folder (missing {LABEL_FILE})")
    sub = image_dir(root)
    records: dict[str, list[Record]] = {"train": [], "test": []}
    for fname, label in read_label_file(labels):
        stem = Path(fname).stem
        split = "train" if stem.startswith("train") else "test" if stem.startswith("test") else None
        if split is None:
            continue  # neither train_* nor test_*: not part of the protocol
        key = aligned_key(sub, fname)
        records[split].append(Record(path=str(root / key), key=key, label=label, split=split))
    index = finish_index(name, root, CLASS_NAMES, records, root / RAF_CACHE,
                         f"none of the images listed in {LABEL_FILE} exist under {sub}/")
    index.align_template = recorded_template(root, sub)
    return index


def recorded_template(root: Path, sub: str):
    """The AlignTemplate of the images under `sub`: synth_meta.json's or `data prepare`'s record;
    such data written before the template was recorded used aucues's earlier template. None for
    RAF-DB's own aligned faces (their crop is not ours to know)."""
    import json

    from aucues.align import LEGACY_TEMPLATE, AlignTemplate

    synth_meta = root / "synth_meta.json"  # aucues.synth.META_NAME (synthetic data, RAF-DB layout)
    if synth_meta.is_file():
        try:
            params = json.loads(synth_meta.read_text(encoding="utf-8")).get("params") or {}
        except (OSError, ValueError, AttributeError):
            raise AucuesError(f"{synth_meta}: unreadable synthetic-data metadata") from None
        return AlignTemplate.from_config_fields(params["align"]) if "align" in params else LEGACY_TEMPLATE
    if sub == ALIGNED_DIRS[0]:
        from aucues.train.data.prepare import read_prepare_template

        return read_prepare_template(root) or LEGACY_TEMPLATE
    return None
