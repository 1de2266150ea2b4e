"""The expression -> Action Unit codebook (docs/method.md §2) and the AU names (FACS)."""

from __future__ import annotations

from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor", 16: "lower lip depressor",
    17: "chin raiser", 20: "lip stretcher", 23: "lip tightener", 24: "lip pressor", 25: "lips part",
    26: "jaw drop", 27: "mouth stretch", 43: "eyes closed",
}

# All 20 AUs of the class-agnostic "generic" map.
GENERIC_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 27, 43)

_PAPER: dict[str, tuple[int, ...]] = {
    "Neutral": (),
    "Happiness": (6, 12, 25),
    "Surprise": (1, 2, 5, 26, 27),
    "Fear": (1, 2, 4, 5, 20, 25, 26, 27),
    "Anger": (4, 5, 7, 10, 17, 23, 24, 25, 26),
    "Disgust": (9, 10, 16, 17, 25, 26),
    "Sadness": (1, 4, 6, 15, 17),
}
# The reference code's Disgust has AU5 where the paper's figure has AU10.
_REFERENCE = dict(_PAPER, Disgust=(9, 5, 16, 17, 25, 26))

VARIANTS = ("paper", "reference")


def codebook(variant: str = "paper") -> dict[int, tuple[int, ...]]:
    """Class index (CLASS_NAMES order) -> its AUs. Neutral (and any class not listed, e.g.
    AffectNet's Contempt) maps to () and so gets no AU map."""
    if variant not in VARIANTS:
        raise AucuesError(f"unknown codebook variant '{variant}'; choose one of: {', '.join(VARIANTS)}")
    table = _PAPER if variant == "paper" else _REFERENCE
    return {i: table[name] for i, name in enumerate(CLASS_NAMES)}


def class_aus(label: int, variant: str = "paper") -> tuple[int, ...]:
    return codebook(variant).get(int(label), ())


def au_label(au: int) -> str:
    """'AU12 lip corner puller'."""
    return f"AU{au} {AU_NAMES[au]}"
