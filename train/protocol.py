"""Model-selection protocol (docs/method.md §9): which split selects the best model and how often
it is validated.

- `select_on: val` (default): a stratified hold-out of the training set (or the dataset's own `val`
  split): the test set never influences training. `select_on: test` reproduces the reference code,
  which validates on the test set (its "validation" IS the test split), so the paper's numbers are
  optimistic; the whole training split is then used for training.
- `valid_every_fraction` f > 0: besides the end-of-epoch validation (every epoch, the first
  included), validate after the optimiser step of every batch index i > 0 with
  i % max(int(f x batches per epoch), 1) == 0, as the reference does (0.0437 in the paper's
  commands). 0 keeps one validation per epoch."""

from __future__ import annotations

from pathlib import Path

from aucues.errors import AucuesError
from aucues.train.config import SELECT_ON  # noqa: F401  (re-exported: the protocol's choices)


def validation_interval(n_batches: int, fraction: float) -> int | None:
    """Steps between mid-epoch validations; None when only the end of the epoch validates."""
    if fraction <= 0 or n_batches < 1:
        return None
    return max(int(fraction * n_batches), 1)


def mid_epoch_due(batch_index: int, n_batches: int, fraction: float) -> bool:
    """Whether to validate after the step of 0-based `batch_index` (never after batch 0)."""
    every = validation_interval(n_batches, fraction)
    return every is not None and batch_index > 0 and batch_index % every == 0


def selection_records(config, index, train_recs: list) -> tuple[list, list]:
    """-> (training records, model-selection records)."""
    from aucues.train.data import train_val_split

    if config.select_on == "test":
        test = list(index.records.get("test") or [])
        if not test:
            raise AucuesError(f"select_on test: {config.data} has no test split")
        return train_recs, test
    if index.records.get("val"):
        return train_recs, list(index.records["val"])
    return train_val_split(train_recs, config.val_fraction, config.seed)


def selection_phrase(config, index) -> str:
    """What selects the model, for the run's messages and reports."""
    if config.select_on == "test":
        return "the test split (reference protocol: test scores of the selected model are optimistic)"
    if index.records.get("val"):
        return "the dataset's val split"
    return f"a held-out {config.val_fraction:g} of train"


def write_selection(path: Path, config, phrase: str, best: dict, validations: list[dict]) -> None:
    """RUN_DIR/selection.json: the protocol used, the best model and every validation (mid-epoch
    ones included), so a report can say how its model was chosen."""
    from aucues.io import atomic_write_json

    atomic_write_json(path, {"select_on": config.select_on, "selected_on": phrase,
                             "valid_every_fraction": config.valid_every_fraction,
                             "best": best, "validations": validations})


def selection_summary(info: dict) -> dict | None:
    """What selected a checkpoint's model, for reports (`evaluate`): an explicit "selection" entry
    (imported models), else the training config saved in it; None when unknown."""
    if isinstance(info.get("selection"), dict):
        return dict(info["selection"])
    tc = info.get("train_config")
    if isinstance(tc, dict):
        return {"select_on": tc.get("select_on", "val"),
                "valid_every_fraction": float(tc.get("valid_every_fraction", 0.0) or 0.0)}
    return None
