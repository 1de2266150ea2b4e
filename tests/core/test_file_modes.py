"""Atomic writes honour the umask like a plain open(): 0644 under umask 022, 0600 under 077."""

from __future__ import annotations

import os
import stat

import pytest

from aucues.io import atomic_write_bytes, atomic_write_json, current_umask


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_mode_follows_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.bin", "b.json", "plain"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_checkpoint_is_world_readable_under_022(tmp_path):
    import torch

    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=32))
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.pt", model)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.pt").stat().st_mode) == 0o644
