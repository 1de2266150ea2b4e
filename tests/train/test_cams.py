"""CAM methods: output contract, the plain CAM equals the model's own, hand-checked gradient CAMs,
hooks released."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.cams import CAM_METHODS, get_cam, normalize_cam
from aucues.train.models import ModelConfig, build_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", attention_layers=(5,)), PreprocessConfig(image_size=64)).eval()


def all_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", CAM_METHODS)
def test_methods_return_unit_maps_at_input_size(model, name):
    x = torch.randn(2, 3, 64, 48)
    with get_cam(name)(model, layer=5) as cam:
        maps = cam(x, torch.tensor([1, 4]))
        again = cam(x)  # predicted classes
    assert maps.shape == (2, 64, 48) and again.shape == (2, 64, 48)
    # normalised before upsampling (docs/method.md §6), so the peak sits between output pixels
    assert maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0.8
    assert all(p.grad is None for p in model.parameters())  # no side effects on training state
    assert all_hooks(model) == 0


def test_cam_method_equals_model_cam_normalised(model):
    x = torch.randn(2, 3, 64, 64)
    classes = torch.tensor([3, 6])
    with get_cam("cam")(model) as cam:
        maps = cam(x, classes)
    with torch.no_grad():
        raw = model(x).cam[torch.arange(2), classes]
    lo = raw.flatten(1).min(1).values[:, None, None]
    hi = raw.flatten(1).max(1).values[:, None, None]
    ref = F.interpolate(((raw - lo) / (hi - lo))[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(maps, ref.clamp(0, 1), rtol=1e-5, atol=1e-5)


def test_gradcam_matches_hand_computation_at_layer_4(model):
    x = torch.randn(1, 3, 64, 64)
    feats = model.forward_intermediates(x, (4,))[4].detach().requires_grad_(True)
    logits = model.head(model.backbone.layer4(feats).mean((2, 3)))
    (g,) = torch.autograd.grad(logits[0, 2], feats)
    raw = torch.relu((g.mean((2, 3), keepdim=True) * feats).sum(1)).detach()
    layer = torch.relu((torch.relu(g) * feats).sum(1)).detach()
    with get_cam("gradcam")(model, layer=4) as cam:
        got = cam(x, torch.tensor([2]))
    with get_cam("layercam")(model, layer=4) as cam:
        got_layer = cam(x, 2)
    torch.testing.assert_close(got, normalize_cam(raw, (64, 64)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_layer, normalize_cam(layer, (64, 64)), rtol=1e-4, atol=1e-4)


def test_hooks_released_even_on_error(model):
    before = all_hooks(model)
    cam = get_cam("gradcampp")(model, layer=3)
    assert all_hooks(model) == before + 1
    with pytest.raises(AucuesError):
        with cam:
            cam(torch.randn(2, 3, 64, 64), torch.tensor([1, 2, 3]))
    assert all_hooks(model) == before
    with pytest.raises(AucuesError, match="released"):
        cam(torch.randn(1, 3, 64, 64))


def test_works_under_no_grad_and_frozen_weights():
    torch.manual_seed(1)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=64)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad(), get_cam("gradcam")(model, layer=5) as cam:
        maps = cam(torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 64, 64) and maps.max() > 0


def test_vit_layers_are_token_grids():
    torch.manual_seed(2)
    model = build_model(ModelConfig(backbone="vit_b_16", attention_layers=(5,)), PreprocessConfig(image_size=32)).eval()
    with get_cam("layercam")(model, layer=3) as cam:
        maps = cam(torch.randn(1, 3, 32, 32), 1)
    assert maps.shape == (1, 32, 32)
    assert all_hooks(model) == 0


def test_bad_names_and_layers(model):
    with pytest.raises(AucuesError, match="unknown CAM method"):
        get_cam("scorecam")
    with pytest.raises(AucuesError, match="layer 5"):
        get_cam("cam")(model, layer=3)
    with pytest.raises(AucuesError):
        get_cam("gradcam")(model, layer=7)
    assert all_hooks(model) == 0


def test_constant_map_normalises_to_zero():
    assert normalize_cam(torch.ones(1, 3, 3), (6, 6)).abs().max() == 0


def test_gradcampp_reference_is_relu_grad_cubed_weights():
    """docs/method.md §6: with GAP the gradient is w[c,k]/HW per channel -> relu(sum_k relu(w)^3 A_k)."""
    from aucues.train.cams import get_cam
    from aucues.train.cams.gradcampp import GradCAMPlusPlusReference

    assert get_cam("gradcampp_reference") is GradCAMPlusPlusReference
    torch.manual_seed(0)
    a = torch.rand(2, 5, 3, 3)
    w = torch.randn(2, 5)
    grads = (w / 9)[:, :, None, None].expand(2, 5, 3, 3)
    got = GradCAMPlusPlusReference.compute(None, a, grads, None, None)
    want = torch.relu((torch.relu(w)[:, :, None, None].pow(3) * a).sum(1)) * 9 / 9 ** 3
    assert torch.allclose(got, want, atol=1e-6)
