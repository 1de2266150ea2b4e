"""The seven expression classes, in the one order used everywhere (docs/method.md §1),
and the mapping of each dataset's own ids onto it."""

from __future__ import annotations

from aucues.errors import AucuesError

CLASS_NAMES: tuple[str, ...] = (
    "Neutral", "Happiness", "Surprise", "Fear", "Anger", "Disgust", "Sadness",
)
NUM_CLASSES = len(CLASS_NAMES)
NEUTRAL = 0

# RAF-DB basic/EmoLabel ids: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
RAFDB_TO_INDEX: dict[int, int] = {1: 2, 2: 3, 3: 5, 4: 1, 5: 6, 6: 4, 7: 0}
INDEX_TO_RAFDB: dict[int, int] = {v: k for k, v in RAFDB_TO_INDEX.items()}

# AffectNet ids: 0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt.
# With 8 classes Contempt keeps index 7 (after our 7); ids 8-10 are not expressions and are dropped.
AFFECTNET_TO_INDEX: dict[int, int] = {0: 0, 1: 1, 2: 6, 3: 2, 4: 3, 5: 5, 6: 4, 7: 7}
CONTEMPT = "Contempt"


def class_names(num_classes: int = NUM_CLASSES) -> tuple[str, ...]:
    if num_classes == NUM_CLASSES:
        return CLASS_NAMES
    if num_classes == NUM_CLASSES + 1:
        return CLASS_NAMES + (CONTEMPT,)
    raise AucuesError(f"num_classes must be 7 or 8 (with Contempt), got {num_classes}")


def class_index(name: str | int, names: tuple[str, ...] = CLASS_NAMES) -> int:
    """Index of a class given by name (case-insensitive) or by index."""
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        idx = int(name)
        if 0 <= idx < len(names):
            return idx
        raise AucuesError(f"class index {idx} out of range 0..{len(names) - 1}")
    lowered = {n.lower(): i for i, n in enumerate(names)}
    key = str(name).strip().lower()
    aliases = {"happy": "happiness", "sad": "sadness", "surprised": "surprise", "angry": "anger",
               "disgusted": "disgust", "fearful": "fear", "scared": "fear"}
    key = aliases.get(key, key)
    if key not in lowered:
        raise AucuesError(f"unknown expression '{name}'; choose one of: {', '.join(names)}")
    return lowered[key]
