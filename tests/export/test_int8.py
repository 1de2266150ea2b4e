"""`aucues export --int8`: a ResNet18 (64 px, CAM head fitted) quantized with calibration faces from
`aucues data synth`, verified against its FP32 graph in ONNX Runtime; a forced failure exits 2; the
check set is disjoint from the calibration set; `repository build` serves the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aucues.errors import AucuesError

SIZE = 64


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("calib")
    synthesize(root, per_class=6, seed=1, image_size=SIZE, progress=False)
    return root


@pytest.fixture(scope="module")
def ckpt(faces, tmp_path_factory):
    """Its CAM head fitted to the synthetic faces' labels (the random backbone frozen: training it
    takes minutes here): a random model's logits nearly tie, so its top-1 flips under any rounding
    and would measure nothing."""
    from aucues.landmark_batch import list_images
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model
    from aucues.export.quantize import load_faces

    meta = json.loads((faces / "synth_meta.json").read_text())
    labels = {s["image"]: s["label"] for s in meta["samples"]}
    keys = [k for k in list_images(faces) if k in labels]
    pre = PreprocessConfig(image_size=SIZE)
    x = torch.from_numpy(load_faces([faces / k for k in keys], pre))
    y = torch.tensor([labels[k] for k in keys])
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", weights="random"), pre).eval()
    with torch.no_grad():
        pooled = model.forward_intermediates(x, (5,))[5].mean(dim=(2, 3))
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.head(pooled), y).backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "r18.pt"
    save_checkpoint(path, model, {})
    return path


@pytest.fixture(scope="module")
def int8_export(ckpt, faces, tmp_path_factory):
    from aucues.cli.main import main

    out = tmp_path_factory.mktemp("int8") / "model_int8.onnx"
    try:
        main(["export", str(ckpt), "--int8", "--calibration", str(faces), "--out", str(out),
              "--exporter", "torchscript"])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, out


@pytest.mark.slow  # a full export + quantization (~10-40 s on 2 shared cores)
def test_int8_verified_against_fp32(int8_export):
    from aucues.export.metadata import read_metadata

    code, out = int8_export
    report = json.loads(out.with_name("model_int8.report.json").read_text())
    assert code in (0, None), report["failures"]
    assert report["verified"] and report["int8"] and not report["failures"]
    q = report["quantization"]
    assert q["top1_agreement"] >= 0.99 and q["check_images"] >= 5
    assert q["format"] == "QDQ" and q["weights"] == "int8 per-channel" and q["quantize_linear_nodes"] > 20
    # the head (classifier conv, mean + bias, softmax) stays float; the backbone is quantized
    assert len(q["excluded_nodes"]) == 4
    expl = {e["output"]: e for e in report["errors"]}
    assert set(expl) == {"logits", "probabilities", "cam"} | {f"attention_{k}" for k in range(1, 6)}
    assert all(expl[n]["cosine_min"] >= 0.98 for n in expl if n == "cam" or n.startswith("attention_"))
    meta = read_metadata(out)
    assert meta["int8"] is True and meta["verified"] is True and meta["quantization"]["top1_agreement"] >= 0.99


@pytest.mark.slow  # a full export + quantization (~10-40 s on 2 shared cores)
def test_int8_graph_runs_int8_convolutions(int8_export):
    import onnx
    import onnxruntime as ort

    _, out = int8_export
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 20 and "DequantizeLinear" in ops
    assert [o.name for o in m.graph.output][:3] == ["logits", "probabilities", "cam"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"image": np.zeros((3, 3, SIZE, SIZE), np.float32)})
    assert y[0].shape == (3, 7) and np.allclose(y[1].sum(1), 1, atol=1e-4)


@pytest.mark.slow  # a full export + quantization (~10-40 s on 2 shared cores)
def test_forced_failure_exits_2(ckpt, faces, tmp_path, cli):
    out = tmp_path / "strict.onnx"
    # per-image cosine 1.0 cannot be met by 8-bit activations: verification must fail, file unverified
    code, text = cli("export", ckpt, "--int8", "--calibration", faces, "--out", out, "--exporter", "torchscript",
                     "--min-cosine", "1.0")
    assert code == 2, text
    assert "verification failed" in text and "cosine vs FP32" in text
    from aucues.export.metadata import read_metadata

    meta = read_metadata(out)
    assert meta["int8"] is True and meta["verified"] is False


def test_check_set_is_disjoint(faces, tmp_path):
    from aucues.export.quantize import Int8Config, split_faces

    calib, check = split_faces(Int8Config(calibration=str(faces)))
    assert calib and check and not set(calib) & set(check)
    assert abs(len(check) - 0.2 * (len(calib) + len(check))) <= 1
    with pytest.raises(AucuesError, match="independent"):
        split_faces(Int8Config(calibration=str(faces), check_set=str(faces)))
    (tmp_path / "one").mkdir()
    with pytest.raises(AucuesError, match="at least 2"):
        split_faces(Int8Config(calibration=str(tmp_path / "one")))


def test_int8_flags_need_int8(faces, tmp_path, cli):
    ckpt = tmp_path / "never_read.pt"  # every check below fails before the checkpoint is loaded
    code, text = cli("export", ckpt, "--calibration", faces, "--out", tmp_path / "m.onnx")
    assert code == 1 and "need --int8" in text
    code, text = cli("export", ckpt, "--int8", "--out", tmp_path / "m.onnx")
    assert code == 1 and "--calibration" in text
    code, text = cli("export", ckpt, "--int8", "--fp16", "--calibration", faces, "--out", tmp_path / "m.onnx")
    assert code == 1 and "exclude each other" in text


@pytest.mark.slow  # a full export + quantization (~10-40 s on 2 shared cores)
def test_repository_serves_int8(int8_export, tmp_path):
    from aucues.serve.repository import build_repository

    _, out = int8_export
    report = build_repository(tmp_path / "repo", onnx=out)
    assert report["int8"] is True and report["verified"] is True
    assert (tmp_path / "repo" / "classifier" / "1" / "model.onnx").is_file()
