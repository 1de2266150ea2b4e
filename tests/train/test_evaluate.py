"""evaluate(): the JSON contract (keys, value ranges), plots, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES
from aucues.train.config import resolve_config
from aucues.train.evaluate import evaluate
from aucues.train.trainer import train

KEYS = {"method", "has_cam", "accuracy", "macro_f1", "per_class_accuracy", "att_cos", "cam_cos", "cam_cos_gradcam",
        "cam_cos_gradcampp", "cam_cos_gradcampp_reference", "cam_cos_layercam", "confusion_matrix", "n_images", "n_skipped",
        "landmarks", "selection"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=6, seed=2, image_size=48, progress=False)
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = resolve_config(None, dict(data=str(root), dataset="synthetic", backbone="resnet18", image_size=40,
                                    epochs=1, batch_size=8, num_workers=0, out=str(out), lr=0.01))
    return root, train(cfg, progress=False)


def test_json_keys_and_ranges(trained, tmp_path):
    root, run = trained
    r = evaluate(run.best_checkpoint, root, "synthetic", split="test", plots_dir=tmp_path / "plots",
                 examples_per_class=1, progress=False)
    assert set(r) == KEYS and r["method"] == "cam"
    json.dumps(r)  # serialisable as is
    assert r["n_images"] == 14 and r["n_skipped"] == 0
    assert r["selection"] == {"select_on": "val", "valid_every_fraction": 0.0, "optimistic": False}
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
    assert list(r["per_class_accuracy"]) == list(CLASS_NAMES)
    assert all(v is None or 0 <= v <= 1 for v in r["per_class_accuracy"].values())
    assert list(r["att_cos"]) == ["1", "2", "3", "4", "5"]
    for v in [*r["att_cos"].values(), r["cam_cos"], r["cam_cos_gradcam"], r["cam_cos_gradcampp"],
              r["cam_cos_layercam"]]:
        assert 0 < v <= 1  # maps and AU maps are non-negative: cosines in [0, 1]
    cm = r["confusion_matrix"]
    assert len(cm) == 7 and all(len(row) == 7 for row in cm) and sum(map(sum, cm)) == 14
    assert sum(cm[i][i] for i in range(7)) / 14 == pytest.approx(r["accuracy"], abs=1e-6)
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "confusion_matrix.png" in pngs and "panel_happiness_0.png" in pngs and len(pngs) == 8
    for p in (tmp_path / "plots").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _MapEcho(torch.nn.Module):
    """A fake FERModel whose attentions (every layer) and CAMs (every class) are the input's first
    channel: fed the AU map there, ATT-COS and CAM-COS must be 1; fed anything else, lower."""

    def __init__(self, size):
        super().__init__()
        from aucues.preprocessing import PreprocessConfig
        from aucues.train.models import ModelConfig

        self.config = ModelConfig(backbone="resnet18")
        self.preprocess = PreprocessConfig(image_size=size)
        self.bias = torch.nn.Parameter(torch.zeros(7))

    def forward(self, x):
        from aucues.train.models import ModelOutput

        m = x[:, 0]
        logits = self.bias.expand(len(x), 7) + x[:, 1, 0, :7]
        return ModelOutput(logits, m[:, None].expand(-1, 7, -1, -1), {l: m for l in range(1, 6)}, {})


def _batches(maps, labels, channel0):
    n = len(labels)
    x = torch.zeros(n, 3, *maps.shape[-2:])
    x[:, 0] = channel0
    x[torch.arange(n), 1, 0, labels] = 5.0  # logits point at the true class: accuracy 1
    return [{"image": x, "label": labels, "au_map": maps, "valid": labels != 0, "n": n, "skipped": [],
             "errors": [], "index": torch.arange(n)}]


def test_metrics_compare_with_the_true_label_map():
    from aucues.au_maps import au_map
    from aucues.au_regions import template_points
    from aucues.train.evaluate import collect

    size = 32
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 1])
    maps = torch.stack([torch.from_numpy(au_map(template_points(size), int(y), size)[0]) for y in labels])
    model = _MapEcho(size)
    same = collect(model, _batches(maps, labels, maps), "cpu")
    assert all(v == pytest.approx(1.0, abs=1e-5) for v in same["att_cos"].values())
    assert same["cam_cos"]["cam"] == pytest.approx(1.0, abs=1e-5)
    assert same["report"]["accuracy"] == 1.0 and same["n_images"] == 8
    flipped = collect(model, _batches(maps, labels, maps.flip(-2)), "cpu")  # upside-down maps
    assert flipped["att_cos"][5] < 0.7 and flipped["cam_cos"]["cam"] < 0.7
    # the unweighted mean over classes: Happiness appears twice, yet each class counts once
    mixed = maps.clone()
    mixed[7] = maps[7].flip(-2)
    r = collect(model, _batches(maps, labels, mixed), "cpu")
    per_sample_happy = (1.0 + float(torch.nn.functional.cosine_similarity(
        maps[7].flip(-2).flatten(), maps[7].flatten(), dim=0))) / 2
    assert r["att_cos"][5] == pytest.approx((5 + per_sample_happy) / 6, abs=1e-4)


def test_errors(trained, tmp_path):
    root, run = trained
    with pytest.raises(AucuesError, match="no 'val' split"):
        evaluate(run.best_checkpoint, root, "synthetic", split="val", progress=False)
    with pytest.raises(AucuesError, match="no such checkpoint"):
        evaluate(tmp_path / "none.pt", root, "synthetic", progress=False)
    with pytest.raises(AucuesError, match="unknown CAM"):
        evaluate(run.best_checkpoint, root, "synthetic", cam_methods=("scorecam",), progress=False)
    with pytest.raises(AucuesError, match="unknown dataset"):
        evaluate(run.best_checkpoint, root, "imagenet", progress=False)
