"""Edits to an imported project's run folder (its config_model.yaml and model.pt), for the bad-input
tests of `aucues import reference` and `aucues import tscam`."""

from __future__ import annotations

import torch
import yaml


def edit_yaml(folder, fn) -> None:
    """fn edits the parsed config_model.yaml in place; it is written back."""
    p = folder / "config_model.yaml"
    d = yaml.safe_load(p.read_text())
    fn(d)
    p.write_text(yaml.dump(d))


def edit_weights(folder, fn) -> None:
    """fn edits model.pt's state dict in place or returns a new one; the result is saved back."""
    d = torch.load(folder / "model.pt", weights_only=True)
    new = fn(d)
    torch.save(new if isinstance(new, dict) else d, folder / "model.pt")
