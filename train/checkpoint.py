"""Checkpoints: a plain torch.save dict, loadable with weights_only=True (no pickled modules).

    {"format": "aucues-checkpoint/1", "model_config": ModelConfig.to_dict(),
     "preprocess": PreprocessConfig.to_dict(), "state_dict": {...}, "versions": {...}, **extra}

`extra` keys (epoch, optimizer/scheduler/RNG state, metrics...) sit at the top level beside the
reserved keys; values may be tensors, numbers, strings, None, bytes and nested lists/tuples/dicts
of those (what weights_only loading accepts). Written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import torch
from torch import Tensor

from aucues.errors import AucuesError

FORMAT = "aucues-checkpoint/1"
RESERVED = ("format", "model_config", "preprocess", "state_dict", "versions")
_SCALARS = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)


def _check_extra(value, where: str) -> None:
    # exact scalar types: subclasses (numpy floats, TorchVersion...) pickle as globals that
    # weights_only loading refuses
    if isinstance(value, Tensor) or type(value) in _SCALARS:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_extra(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise AucuesError(f"checkpoint extra {where}: key {k!r} must be a str or number")
            _check_extra(v, f"{where}[{k!r}]")
        return
    raise AucuesError(f"checkpoint extra {where}: {type(value).__name__} cannot be stored "
                      f"(use tensors, numbers, strings and lists/dicts of them)")


def _versions() -> dict:
    import torchvision

    import aucues

    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses
    return {"aucues": str(aucues.__version__), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__)}


def save_checkpoint(path, model, extra: dict | None = None) -> None:
    from aucues.io import atomic_write_bytes

    extra = dict(extra or {})
    clash = [k for k in extra if k in RESERVED]
    if clash:
        raise AucuesError(f"checkpoint extra uses reserved keys: {', '.join(clash)}")
    for k, v in extra.items():
        if not isinstance(k, str):
            raise AucuesError(f"checkpoint extra key {k!r} must be a string")
        _check_extra(v, k)
    payload = {
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "preprocess": model.preprocess.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": _versions(),
        **extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, map_location="cpu"):
    """-> (model in eval mode, info: the file's dict without state_dict)."""
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.models import ModelConfig, build_model

    p = Path(path)
    if not p.exists():
        raise AucuesError(f"{p}: no such checkpoint file")
    if p.is_dir():
        raise AucuesError(f"{p}: is a directory, expected a checkpoint file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save's zip container; aucues never writes the legacy format
        raise AucuesError(f"{p}: not a checkpoint (not a torch zip archive; empty, corrupt or another kind of file)")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        # weights_only failures put the useful line ("Unsupported global: ...") in the middle
        useful = [l for l in lines if "Unsupported global" in l] or lines or [type(e).__name__]
        msg = useful[0].split(" was not an allowed global")[0].split(". ")[0][:160]
        raise AucuesError(f"{p}: not a readable checkpoint (corrupt, truncated or holding pickled objects: {msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise AucuesError(f"{p}: not an aucues checkpoint (expected format {FORMAT}, found {found!r})")
    missing = [k for k in RESERVED if k not in data]
    if missing:
        raise AucuesError(f"{p}: incomplete aucues checkpoint (missing {', '.join(missing)})")
    try:
        config = ModelConfig.from_dict(data["model_config"])
        preprocess = PreprocessConfig.from_dict(data["preprocess"])
    except (TypeError, ValueError, AucuesError) as e:
        raise AucuesError(f"{p}: bad model or preprocessing config ({e})") from None
    # The saved tensors are the weights: never download or read the original init weights again.
    model = build_model(dataclasses.replace(config, weights="random"), preprocess)
    model.config = config
    state = data["state_dict"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise AucuesError(f"{p}: weights do not fit {config.backbone}: "
                          f"{' '.join(s.strip() for s in first[:3])[:200]}") from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    info = {k: v for k, v in data.items() if k != "state_dict"}
    return model, info


def checkpoint_sha256(path) -> str:
    p = Path(path)
    if not p.is_file():
        raise AucuesError(f"{p}: no such checkpoint file")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
