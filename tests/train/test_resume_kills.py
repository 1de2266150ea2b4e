"""Kill training at every checkpoint write (before, half-way through, after) and resume: the run
ends with the same best.pt and last.pt as an uninterrupted one, and no `.*.tmp` is left behind."""

from __future__ import annotations

import pytest
import torch

import aucues.io
from aucues.train.config import resolve_config
from aucues.train.trainer import train

torch.set_num_threads(1)


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=4, seed=0, image_size=48, progress=False)
    return root


def tiny(synth, out, **over):
    base = dict(data=str(synth), dataset="synthetic", backbone="resnet18", image_size=32, epochs=2,
                batch_size=8, lr=0.01, num_workers=0, seed=0, out=str(out), val_fraction=0.3)
    return resolve_config(None, {**base, **over})


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "r"
    writes = []
    real = aucues.io.atomic_write_bytes

    def counting(path, data):
        if str(path).endswith(".pt"):
            writes.append(str(path).rsplit("/", 1)[-1])
        return real(path, data)

    aucues.io.atomic_write_bytes = counting
    try:
        train(tiny(synth, out), progress=False)
    finally:
        aucues.io.atomic_write_bytes = real
    return out, writes


def test_best_is_written_before_last(reference):
    _, writes = reference
    assert writes[:2] == ["best.pt", "last.pt"] and writes[-1] == "last.pt"


def _same(a_path, b_path):
    a, b = _load(a_path), _load(b_path)
    assert a["epoch"] == b["epoch"] and a["best"] == b["best"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


@pytest.mark.parametrize("mode", ["before", "during", "after"])
def test_kill_at_every_write_then_resume(reference, synth, tmp_path, monkeypatch, mode):
    ref, writes = reference
    real = aucues.io.atomic_write_bytes
    for k in range(len(writes)):
        out = tmp_path / f"{mode}{k}"
        seen = []

        def dying(path, data, k=k):
            if str(path).endswith(".pt"):
                seen.append(path)
                if len(seen) == k + 1:
                    if mode == "before":
                        raise Killed()
                    if mode == "during":  # half a temporary file, never renamed
                        (out / f".{path.name}.abc123.tmp").write_bytes(data[: len(data) // 2])
                        raise Killed()
                    real(path, data)
                    raise Killed()
            return real(path, data)

        monkeypatch.setattr(aucues.io, "atomic_write_bytes", dying)
        with pytest.raises(Killed):
            train(tiny(synth, out), progress=False)
        monkeypatch.setattr(aucues.io, "atomic_write_bytes", real)
        train(tiny(synth, out, resume=(out / "last.pt").exists()), progress=False)
        _same(ref / "last.pt", out / "last.pt")
        _same(ref / "best.pt", out / "best.pt")
        assert not list(out.glob(".*.tmp")), k
        assert (out / "metrics.csv").read_text().count("\n") == 3


def test_resume_rewrites_a_missing_best_from_last(reference, synth, tmp_path):
    ref, _ = reference
    out = tmp_path / "r"
    train(tiny(synth, out, stop_after_epoch=1), progress=False)
    (out / "best.pt").unlink()  # last.pt's best is epoch 1: the model last.pt holds
    train(tiny(synth, out, resume=True), progress=False)
    _same(ref / "best.pt", out / "best.pt")
    _same(ref / "last.pt", out / "last.pt")


def test_trainer_uses_the_config_schedule():
    from aucues.train.build import build_optimizer

    cfg = resolve_config(None, dict(data="x", lr=0.1, lr_step=2, lr_decay=0.5, min_lr=0.02, epochs=8))
    model = torch.nn.Linear(2, 2)
    opt, sched = build_optimizer(model, cfg)
    for e in range(8):
        assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr_at(e)), e
        opt.step()
        sched.step()
