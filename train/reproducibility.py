"""Seeds and RNG states, so a run resumed from last.pt reproduces the uninterrupted run exactly.

The global RNGs (python, numpy, torch and CUDA) are reseeded with (seed, epoch, rank) at the start of
every epoch (`epoch_seed`); data order and augmentations have their own seeds (train/trainer.py).
`rng_state` / `set_rng_state` save and restore the global RNGs in a form checkpoints accept
(train/checkpoint.py: tensors, numbers, strings and lists, loadable with weights_only=True)."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": _py_state_to_list(random.getstate()),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _py_state_to_list(s):
    return [s[0], list(s[1]), s[2]]


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 7919 + epoch * 104729 + rank * 15485863) % (2 ** 31)
