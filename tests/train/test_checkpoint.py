"""Checkpoint round trip and one-line errors for bad files."""

from __future__ import annotations

import pytest
import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
from aucues.train.models import ModelConfig, build_model

torch.set_num_threads(1)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", attention_layers=(3, 5)),
                       PreprocessConfig(image_size=64)).eval()


def test_round_trip_identical_outputs(tmp_path, model):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 64, 64)).logits.sum().backward()
    opt.step()
    model.eval()
    extra = {"epoch": 3, "optimizer": opt.state_dict(), "rng": {"torch": torch.get_rng_state()},
             "history": [{"acc": 0.5, "tag": None}], "python_rng": (3, (1, 2), None)}
    path = tmp_path / "ck" / "model.pt"
    save_checkpoint(path, model, extra)
    loaded, info = load_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.cam, b.cam)
    assert torch.equal(a.attentions[3], b.attentions[3])
    assert loaded.config == model.config and loaded.preprocess == model.preprocess
    assert info["format"] == "aucues-checkpoint/1" and "state_dict" not in info
    assert info["epoch"] == 3 and info["history"][0]["acc"] == 0.5
    assert set(info["versions"]) == {"aucues", "torch", "torchvision"}
    opt2 = torch.optim.SGD(loaded.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(info["optimizer"])
    assert len(checkpoint_sha256(path)) == 64
    assert not list(path.parent.glob("*.tmp"))


def test_file_has_no_pickled_modules(tmp_path, model):
    save_checkpoint(tmp_path / "m.pt", model)
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    assert data["model_config"]["backbone"] == "resnet18"
    assert data["preprocess"]["image_size"] == 64


def test_imagenet_config_loads_without_download(tmp_path, model):
    model.config.weights = "imagenet"  # recorded provenance only; loading must not fetch anything
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config.weights == "imagenet"


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(AucuesError) as e:
        load_checkpoint(tmp_path / "nope.pt")
    assert "no such checkpoint file" in one_line(e)
    with pytest.raises(AucuesError):
        checkpoint_sha256(tmp_path / "nope.pt")


def test_corrupt_and_truncated_file(tmp_path, model):
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(AucuesError) as e:
        load_checkpoint(tmp_path / "junk.pt")
    assert "not a checkpoint" in one_line(e)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(AucuesError) as e:
        load_checkpoint(tmp_path / "empty.pt")
    assert "not a checkpoint" in one_line(e)
    save_checkpoint(tmp_path / "m.pt", model)
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(AucuesError) as e:
        load_checkpoint(tmp_path / "cut.pt")
    assert "not a readable checkpoint" in one_line(e)


def test_foreign_torch_files(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "plain_state.pt")
    torch.save({"format": "something-else/2", "w": torch.zeros(2)}, tmp_path / "other.pt")
    torch.save(model, tmp_path / "pickled_module.pt")
    for name in ("plain_state.pt", "other.pt"):
        with pytest.raises(AucuesError) as e:
            load_checkpoint(tmp_path / name)
        assert "not an aucues checkpoint" in one_line(e)
    with pytest.raises(AucuesError) as e:  # weights_only refuses the pickled module
        load_checkpoint(tmp_path / "pickled_module.pt")
    assert "ResNetFER" in one_line(e)


def test_mismatched_weights(tmp_path, model):
    save_checkpoint(tmp_path / "m.pt", model)
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["model_config"]["backbone"] = "resnet34"
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(AucuesError) as e:
        load_checkpoint(tmp_path / "bad.pt")
    assert "do not fit resnet34" in one_line(e)


def test_extra_validation(tmp_path, model):
    import numpy as np

    with pytest.raises(AucuesError, match="reserved"):
        save_checkpoint(tmp_path / "m.pt", model, {"state_dict": {}})
    with pytest.raises(AucuesError, match="ndarray"):
        save_checkpoint(tmp_path / "m.pt", model, {"rng": {"numpy": np.zeros(3)}})
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("size", [20000, "224", 8])
def test_absurd_image_size_is_one_line(tmp_path, model, cli, size):
    """A checkpoint whose preprocessing asks for a 20000 px input once died allocating ~5 GB with a
    traceback (export, evaluate, serve); now load refuses it with one line naming the file."""
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    data = torch.load(path, weights_only=True)
    data["preprocess"]["image_size"] = size
    torch.save(data, path)
    with pytest.raises(AucuesError, match="image_size must be") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    code, out = cli("export", path, "--out", tmp_path / "m.onnx")
    assert code == 1 and "Traceback" not in out
    assert len([ln for ln in out.splitlines() if ln.startswith("error:")]) == 1 and "image_size" in out
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoint_without_template_keys_keeps_the_legacy_template(tmp_path, model):
    """Checkpoints written before the alignment template was a PreprocessConfig field load with the
    template they were trained on (aucues's earlier one), not the new default."""
    from aucues.align import LEGACY_TEMPLATE

    assert model.preprocess.template != LEGACY_TEMPLATE
    save_checkpoint(tmp_path / "new.pt", model)
    data = torch.load(tmp_path / "new.pt", weights_only=True)
    for k in ("align_template", "align_template_size", "align_level_eyes"):
        del data["preprocess"][k]
    torch.save(data, tmp_path / "old.pt")
    old, _ = load_checkpoint(tmp_path / "old.pt")
    assert old.preprocess.template == LEGACY_TEMPLATE
    new, _ = load_checkpoint(tmp_path / "new.pt")
    assert new.preprocess.template == model.preprocess.template
