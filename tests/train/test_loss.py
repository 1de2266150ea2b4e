"""The composite loss (docs/method.md §5) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aucues.errors import AucuesError
from aucues.train.loss import AUAlignmentLoss, resize_map
from aucues.train.models import ModelOutput

torch.set_num_threads(1)


def make_out(att5: torch.Tensor, logits: torch.Tensor, features5: torch.Tensor | None = None) -> ModelOutput:
    feats = features5 if features5 is not None else att5[:, None]
    return ModelOutput(logits=logits, cam=torch.zeros(logits.shape[0], logits.shape[1], *att5.shape[-2:]),
                       attentions={5: att5}, features={5: feats})


def hand_cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 2])
    att = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [2.0, 1.0]]])
    # maps already at the attention's size: no resizing involved
    maps = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [0.0, 0.5]]])
    valid = torch.tensor([True, True])
    parts = AUAlignmentLoss(layers=(5,), lam=4.0)(make_out(att, logits), target, maps, valid)
    ce = (-math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
          - math.log(math.exp(0.3) / (math.exp(0.1) + math.exp(0.2) + math.exp(0.3)))) / 2
    c0 = hand_cos([1, 2, 3, 4], [0, 1, 1, 0])       # 5 / (sqrt(30) sqrt(2))
    c1 = hand_cos([-1, 0, 2, 1], [1, 1, 0, 0.5])    # -0.5 / (sqrt(6) * 1.5)
    align = ((1 - c0) + (1 - c1)) / 2
    assert parts.ce.item() == pytest.approx(ce, rel=1e-6)
    assert parts.align.item() == pytest.approx(align, rel=1e-6)
    assert parts.total.item() == pytest.approx(ce + 4.0 * align, rel=1e-6)


def test_invalid_samples_contribute_nothing():
    torch.manual_seed(0)
    logits, target = torch.randn(3, 7), torch.tensor([1, 0, 4])
    att = torch.randn(3, 4, 4)
    maps = torch.rand(3, 16, 16)
    valid = torch.tensor([True, False, True])
    loss = AUAlignmentLoss(lam=9.0)
    a = loss(make_out(att, logits), target, maps, valid)
    maps2 = maps.clone()
    maps2[1] = torch.rand(16, 16) * 5
    att2 = att.clone()
    att2[1] = torch.randn(4, 4)
    b = loss(make_out(att2, logits), target, maps2, valid)
    assert a.align.item() == pytest.approx(b.align.item(), abs=0)
    # and equals the loss over the valid samples alone
    only = loss(make_out(att[[0, 2]], logits[[0, 2]]), target[[0, 2]], maps[[0, 2]], valid[[0, 2]])
    assert a.align.item() == pytest.approx(only.align.item(), rel=1e-6)


def test_no_valid_sample_gives_zero_align_and_backprops():
    logits = torch.randn(2, 7, requires_grad=True)
    att = torch.randn(2, 3, 3, requires_grad=True)
    parts = AUAlignmentLoss()(make_out(att, logits), torch.tensor([0, 0]), torch.zeros(2, 12, 12),
                              torch.tensor([False, False]))
    assert parts.align.item() == 0.0
    assert parts.total.item() == pytest.approx(parts.ce.item())
    parts.total.backward()
    assert logits.grad is not None and att.grad is not None and (att.grad == 0).all()


def test_lambda_zero_and_disabled_equal_ce():
    torch.manual_seed(1)
    logits, target = torch.randn(4, 7), torch.randint(0, 7, (4,))
    out = make_out(torch.randn(4, 5, 5), logits)
    maps, valid = torch.rand(4, 20, 20), torch.ones(4, dtype=torch.bool)
    ce = F.cross_entropy(logits, target)
    zero = AUAlignmentLoss(lam=0.0)(out, target, maps, valid)
    off = AUAlignmentLoss(enabled=False)(out, target, maps, valid)
    assert zero.total.item() == ce.item() and off.total.item() == ce.item()
    assert zero.align.item() > 0 and off.align.item() == 0


def test_random_avg_p1_equals_plain_mean_and_p_half_is_a_channel_subset():
    torch.manual_seed(2)
    feats = torch.randn(2, 6, 4, 4)
    logits, target = torch.randn(2, 7), torch.tensor([1, 2])
    maps, valid = torch.rand(2, 8, 8), torch.ones(2, dtype=torch.bool)
    out = make_out(feats.mean(1), logits, feats)
    plain = AUAlignmentLoss(random_avg_p=1.0)(out, target, maps, valid)
    torch.manual_seed(5)
    half = AUAlignmentLoss(random_avg_p=0.5)(out, target, maps, valid)
    torch.manual_seed(5)
    again = AUAlignmentLoss(random_avg_p=0.5)(out, target, maps, valid)
    assert half.align.item() == again.align.item()  # deterministic given torch's RNG
    # brute force: some non-empty channel subset (Bernoulli count, §5) per sample reproduces each term
    from itertools import combinations

    a = resize_map(maps, (4, 4)).flatten(1)
    terms = [{round(1 - F.cosine_similarity(feats[n, list(s)].mean(0).flatten()[None], a[n][None],
                                             eps=1e-8).item(), 5) for k in range(1, 7) for s in combinations(range(6), k)} for n in range(2)]
    assert any(round((x + y) / 2, 4) == round(half.align.item(), 4) for x in terms[0] for y in terms[1])
    assert plain.align.item() != half.align.item()


def test_map_is_downsampled_antialiased_and_clamped():
    m = torch.zeros(1, 16, 16)
    m[0, 4:12, 4:12] = 1.0
    small = resize_map(m, (4, 4))
    ref = F.interpolate(m[:, None], size=(4, 4), mode="bilinear", antialias=True, align_corners=True)[:, 0]
    torch.testing.assert_close(small, ref.clamp(0, 1))
    assert small.min() >= 0 and small.max() <= 1


def test_bad_layers_and_missing_attention():
    with pytest.raises(AucuesError):
        AUAlignmentLoss(layers=(6,))
    with pytest.raises(AucuesError):
        AUAlignmentLoss(random_avg_p=0.0)
    out = make_out(torch.randn(1, 2, 2), torch.randn(1, 7))
    with pytest.raises(AucuesError, match="layer 3"):
        AUAlignmentLoss(layers=(3,))(out, torch.tensor([1]), torch.rand(1, 4, 4), torch.tensor([True]))


def test_with_a_real_model_backpropagates():
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(3)
    model = build_model(ModelConfig(backbone="resnet18", attention_layers=(4, 5)), PreprocessConfig(image_size=64))
    out = model(torch.randn(2, 3, 64, 64))
    parts = AUAlignmentLoss(layers=(4, 5), lam=9.0)(out, torch.tensor([1, 0]), torch.rand(2, 64, 64),
                                                    torch.tensor([True, False]))
    parts.total.backward()
    assert model.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0


def test_random_avg_is_bernoulli_per_sample():
    """docs/method.md §5: channel count kept varies across samples; p=1 is the plain mean."""
    from aucues.train.loss import random_channel_mean

    n, c = 16, 64
    eye = torch.eye(c)[None, :, :, None].expand(n, c, c, 1).contiguous()  # channel k -> one-hot at row k
    g = torch.Generator().manual_seed(0)
    out = random_channel_mean(eye, 0.5, generator=g)[..., 0]  # (n, c): 1/kept at kept rows
    counts = (out > 0).sum(1)
    assert len(set(counts.tolist())) > 1
    assert torch.allclose(out.sum(1), torch.ones(n))
    x = torch.randn(2, 5, 3, 3)
    assert torch.allclose(random_channel_mean(x, 1.0), x.mean(1))
    assert torch.allclose(random_channel_mean(x, 1e-9), x.mean(1))  # nothing kept: plain mean


def test_resize_map_uses_align_corners_true():
    import torch.nn.functional as F

    from aucues.train.loss import resize_map

    m = torch.rand(2, 32, 32)
    want = F.interpolate(m[:, None], size=(7, 7), mode="bilinear", antialias=True, align_corners=True)[:, 0]
    assert torch.allclose(resize_map(m, (7, 7)), want.clamp(float(m.min()), float(m.max())), atol=1e-6)
