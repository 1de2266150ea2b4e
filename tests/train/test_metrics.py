"""Metrics on hand examples (docs/method.md §7)."""

from __future__ import annotations

import math

import pytest
import torch

from aucues.errors import AucuesError
from aucues.train.metrics import InterpretabilityMeter, classification_report, map_cosine


def test_identical_maps_give_one_and_disjoint_give_zero():
    a = torch.zeros(1, 8, 8)
    a[0, :4] = 1.0
    b = torch.zeros(1, 8, 8)
    b[0, 4:] = 1.0
    assert map_cosine(a, a).item() == pytest.approx(1.0)
    assert map_cosine(a, b).item() == pytest.approx(0.0, abs=1e-7)


def test_upsampling_and_negative_shift_by_hand():
    pred = torch.tensor([[[-1.0, 1.0]]])           # (1, 1, 2) -> shifted to [0, 2]
    target = torch.tensor([[[0.0, 1.0]]])
    assert map_cosine(pred, target).item() == pytest.approx(1.0, abs=1e-6)
    # non-negative predictions are not shifted: [1, 2] vs [0, 1] -> 2 / sqrt(5)
    assert map_cosine(torch.tensor([[[1.0, 2.0]]]), target).item() == pytest.approx(2 / math.sqrt(5), rel=1e-6)
    # a constant map upsampled to 4x4 stays constant: cos with a one-hot map = 1 / 4
    t = torch.zeros(1, 4, 4)
    t[0, 0, 0] = 1.0
    assert map_cosine(torch.full((1, 2, 2), 3.0), t).item() == pytest.approx(0.25, rel=1e-6)
    # bilinear upsampling of a 2x2 map to 4x4 matches torch's reference path
    p = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    up = torch.nn.functional.interpolate(p[:, None], size=(4, 4), mode="bilinear", align_corners=False)[:, 0]
    tgt = torch.rand(1, 4, 4)
    ref = (up.flatten() @ tgt.flatten()) / (up.norm() * tgt.norm())
    assert map_cosine(p, tgt).item() == pytest.approx(ref.item(), rel=1e-5)


def test_zero_and_nan_maps_count_zero():
    assert map_cosine(torch.zeros(1, 3, 3), torch.rand(1, 6, 6)).item() == 0.0
    nan = torch.full((1, 3, 3), float("nan"))
    assert map_cosine(nan, torch.rand(1, 3, 3)).item() == 0.0


def test_meter_per_class_and_neutral_excluded():
    m = InterpretabilityMeter()
    m.update(torch.tensor([1.0, 0.0, 0.5, 0.9, float("nan")]), torch.tensor([0, 1, 1, 2, 3]),
             torch.tensor([True, True, True, True, True]))
    m.update([0.2], [4], [False])  # invalid: ignored
    pc = m.per_class()
    assert pc == pytest.approx({"Neutral": 1.0, "Happiness": 0.25, "Surprise": 0.9, "Fear": 0.0})
    assert m.mean() == pytest.approx((0.25 + 0.9 + 0.0) / 3)  # unweighted, Neutral left out
    assert m.counts()["Anger"] == 0
    m.reset()
    assert math.isnan(m.mean())
    with pytest.raises(AucuesError):
        m.update([0.5], [9], [True])


def test_classification_report_by_hand():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    r = classification_report(preds, labels, num_classes=4)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert r["per_class_accuracy"] == [0.5, 1.0, 0.5, None]
    f1 = [2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 1 / (2 + 1)]  # class 3 never seen: not averaged
    assert r["macro_f1"] == pytest.approx(sum(f1) / 3)
    with pytest.raises(AucuesError):
        classification_report([0, 5], [0, 1], num_classes=4)


def test_att_cos_upsamples_with_align_corners_true_cam_cos_false():
    """docs/method.md §7."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    p, t = torch.rand(1, 4, 4), torch.rand(1, 16, 16)
    for attention in (True, False):
        up = F.interpolate(p[:, None], size=(16, 16), mode="bilinear", align_corners=attention,
                           antialias=attention)[:, 0].clamp(float(p.min()), float(p.max()))
        ref = F.cosine_similarity(up.flatten(1), t.flatten(1), eps=1e-8)
        assert map_cosine(p, t, attention=attention).item() == pytest.approx(ref.item(), rel=1e-5)
    assert map_cosine(p, t, attention=True).item() != map_cosine(p, t).item()


def test_meter_reference_mean_scores_missing_class_minus_one():
    from aucues.train.metrics import InterpretabilityMeter

    m = InterpretabilityMeter()
    m.update(torch.tensor([0.5, 0.9]), torch.tensor([1, 0]))  # Happiness 0.5, Neutral dropped
    assert m.mean() == pytest.approx(0.5)
    assert m.mean(reference=True) == pytest.approx((0.5 - 5) / 6)
