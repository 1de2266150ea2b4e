"""`aucues import reference` (docs/import.md): a folder in exactly the released layout (docs/method.md
§11), built from random weights, imports into a model whose logits, CAM and layer-5 attention match
an independent forward written here from the state dict (torchvision's resnet with §5's strides set
by hand, then §6's head), in PyTorch and in the exported ONNX (ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train.reference_layout import make_reference_folder, random_resnet, shift_for_adl

SIZE = 64


def reference_forward(net, fc_w, fc_b, x):
    """§5 large maps: stride 1 in layer3[0] and layer4[0] (conv2 and downsample.0), dilation 1;
    §6 head: GAP + linear; CAM_c = sum_k w[c, k] A_k on layer4's output; attention = channel mean."""
    import copy

    net = copy.deepcopy(net).eval()
    for layer in (net.layer3, net.layer4):
        # the 3x3 conv carries the stride: conv2 in Bottleneck (resnet50), conv1 in BasicBlock (resnet18)
        conv = layer[0].conv2 if hasattr(layer[0], "conv3") else layer[0].conv1
        conv.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)
        assert conv.dilation == (1, 1) and conv.padding == (1, 1)
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        a = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        logits = a.mean(dim=(2, 3)) @ fc_w.T + fc_b
        cam = torch.einsum("ck,nkhw->nchw", fc_w, a)
        att5 = a.mean(1)
    return {"logits": logits, "cam": cam, "attention_5": att5}


def _check(ref: dict, got: dict, what: str) -> dict:
    errs = {}
    for k, r in ref.items():
        r = np.asarray(r, np.float64)
        g = np.asarray(got[k], np.float64)
        assert g.shape == r.shape, (what, k, g.shape, r.shape)
        scale = float(np.abs(r).max())
        err = float(np.abs(g - r).max())
        assert scale > 0 and err <= 1e-4 * scale, f"{what} {k}: max abs diff {err:.3g} > 1e-4 x {scale:.3g}"
        errs[k] = err / scale
    print(what, {k: f"{v:.2e}" for k, v in errs.items()})
    return errs


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from aucues.train.reference_import import import_reference

    root = tmp_path_factory.mktemp("shared-trained-models")
    folder, net, fc_w, fc_b = make_reference_folder(root, "RAF-DB", "CAM", True, crop=SIZE, layers="5", lam=4.0)
    out = tmp_path_factory.mktemp("imp") / "cam.pt"
    summary = import_reference(folder, out)
    return out, summary, net, fc_w, fc_b


def _inputs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch", [1, 4])
def test_parity_with_independent_forward(imported, batch):
    from aucues.train.checkpoint import load_checkpoint

    out, _, net, fc_w, fc_b = imported
    model, _ = load_checkpoint(out)
    x = _inputs(batch, batch)
    with torch.no_grad():
        o = model(x)
    ref = reference_forward(net, fc_w, fc_b, x)
    assert o.cam.shape[-2:] == (SIZE // 8, SIZE // 8)  # large maps: layer 5 at 1/8 of the input
    _check(ref, {"logits": o.logits, "cam": o.cam, "attention_5": o.attentions[5]}, f"torch batch {batch}")


def test_checkpoint_records_the_source(imported):
    from aucues.labels import CLASS_NAMES
    from aucues.train.checkpoint import load_checkpoint

    out, summary, *_ = imported
    model, info = load_checkpoint(out)
    assert model.config.backbone == "resnet50" and model.config.large_maps is True
    assert model.config.self_attention_layers == ()
    assert model.preprocess.image_size == SIZE and model.preprocess.codebook == "reference"
    assert model.preprocess.class_names == CLASS_NAMES
    ref = info["reference"]
    assert (ref["method"], ref["dataset"], ref["au_loss"], ref["au_layers"], ref["au_lambda"]) == \
        ("CAM", "RAF-DB", True, [5], 4.0)
    assert ref["checkpoint"] == "best" and ref["cam_method"] == "cam"
    assert info["au"] == {"loss": True, "layers": [5], "lambda": 4.0, "map_kind": "class", "codebook": "reference"}
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("encoder", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_exported_onnx_parity(encoder, imported, tmp_path):
    """The exported ONNX of an imported model, run in ONNX Runtime, against the same independent
    forward (ResNet50 export takes ~25 s on two cores: slow; ResNet18 keeps the path in the fast suite)."""
    import onnxruntime as ort

    from aucues.export import ExportConfig, export_onnx, read_metadata
    from aucues.train.reference_import import import_reference

    if encoder == "resnet50":
        out, _, net, fc_w, fc_b = imported
    else:
        folder, net, fc_w, fc_b = make_reference_folder(tmp_path, "AffectNet", "GradCAMpp", True,
                                                        encoder=encoder, seed=5, crop=SIZE)
        out = tmp_path / "r18.pt"
        import_reference(folder, out)
    onnx_path = tmp_path / "ref.onnx"
    # the default exporter (dynamo) for ResNet50; torchscript (faster to run here) for ResNet18
    exporter = "dynamo" if encoder == "resnet50" else "torchscript"
    report = export_onnx(out, onnx_path, ExportConfig(exporter=exporter, batch=4, layers=(5,)))
    assert report.verified, report.failures
    meta = read_metadata(onnx_path)
    assert meta["au"]["codebook"] == "reference" and meta["preprocess"]["codebook"] == "reference"
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for batch in (1, 4):
        x = _inputs(batch, 10 + batch)
        got = dict(zip(names, sess.run(None, {"image": x.numpy()})))
        _check(reference_forward(net, fc_w, fc_b, x), got, f"onnx {encoder} batch {batch}")


def test_adl_layout(tmp_path):
    """ADL's parameter-free modules shift the block indices (layer3 [0, ADL, 1..5], layer4
    [0, ADL, 1, 2, ADL]); the import shifts them back and matches the plain network (ADL is the
    identity at eval)."""
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.reference_import import import_reference

    folder, net, fc_w, fc_b = make_reference_folder(tmp_path, "AffectNet", "ADL", False, seed=3, crop=SIZE)
    enc = torch.load(folder / "model.pt", weights_only=True)["encoder"]
    assert "layer3.6.conv1.weight" in enc and "layer3.1.conv1.weight" not in enc
    assert "layer4.3.conv1.weight" in enc and "layer4.1.conv1.weight" not in enc
    out = tmp_path / "adl.pt"
    import_reference(folder, out)
    model, info = load_checkpoint(out)
    assert info["reference"]["method"] == "ADL" and info["reference"]["au_loss"] is False
    x = _inputs(2, 7)
    with torch.no_grad():
        o = model(x)
    _check(reference_forward(net, fc_w, fc_b, x),
           {"logits": o.logits, "cam": o.cam, "attention_5": o.attentions[5]}, "ADL")


def test_adl_keys_rejected_for_a_plain_method(tmp_path):
    """The same shifted keys under method CAM do not fit: one line naming the keys, nothing written."""
    from aucues.errors import AucuesError
    from aucues.train.reference_import import import_reference

    folder, *_ = make_reference_folder(tmp_path, "RAF-DB", "CAM", True, encoder="resnet18", crop=SIZE)
    data = torch.load(folder / "model.pt", weights_only=True)
    net18 = random_resnet("resnet18", 0)
    data["encoder"] = shift_for_adl({k: v for k, v in net18.state_dict().items() if not k.startswith("fc.")})
    torch.save(data, folder / "model.pt")
    with pytest.raises(AucuesError, match="does not match.*(missing|unexpected)"):
        import_reference(folder, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_yaml_options_map_onto_the_model(tmp_path):
    """Self-attention on the aligned layers becomes the model's gating; without the AU loss an
    unusable layers option is ignored."""
    import yaml

    from aucues.train.reference_import import convert

    folder, *_ = make_reference_folder(tmp_path / "a", "RAF-DB", "CAM", True, encoder="resnet18", crop=SIZE,
                                       layers="5-4")
    p = folder / "config_model.yaml"
    d = yaml.safe_load(p.read_text())
    d["align_atten_to_heatmap_use_self_atten"] = True
    p.write_text(yaml.dump(d))
    model, spec, cam = convert(folder)
    assert model.config.self_attention_layers == (4, 5) and spec.au_layers == (5, 4) and cam == "cam"

    folder, *_ = make_reference_folder(tmp_path / "b", "RAF-DB", "GradCam", False, encoder="resnet18", crop=SIZE,
                                       layers="None")
    model, spec, cam = convert(folder)
    assert spec.au_loss is False and spec.au_layers == () and cam == "gradcam"
    assert model.config.self_attention_layers == ()
