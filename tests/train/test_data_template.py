"""The data's alignment template reaches the model: training copies it into the PreprocessConfig,
evaluate refuses data aligned with another template, `data prepare` records its template."""

from __future__ import annotations

import pytest

from aucues.align import LEGACY_TEMPLATE, REFERENCE_TEMPLATE
from aucues.errors import AucuesError
from aucues.synth import synthesize
from aucues.train.build import make_preprocess
from aucues.train.config import TrainConfig
from aucues.train.data import open_dataset


@pytest.fixture(scope="module")
def legacy_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("legacy_synth")
    synthesize(out, per_class=2, seed=0, image_size=32, progress=False, template=LEGACY_TEMPLATE)
    return out


def test_training_copies_the_data_template(legacy_synth, tmp_path):
    index = open_dataset("synthetic", legacy_synth)
    assert index.align_template == LEGACY_TEMPLATE
    pre = make_preprocess(TrainConfig(data=str(legacy_synth), dataset="synthetic", image_size=32),
                          index.class_names, index.align_template)
    assert pre.template == LEGACY_TEMPLATE
    default = tmp_path / "d"
    synthesize(default, per_class=1, seed=0, image_size=32, progress=False)
    assert open_dataset("synthetic", default).align_template == REFERENCE_TEMPLATE


def test_evaluate_refuses_data_of_another_crop(legacy_synth, tmp_path):
    import torch

    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.evaluate import evaluate
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", weights="random", attention_layers=(5,)),
                        PreprocessConfig(image_size=32))  # the default (reference) template
    save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(AucuesError, match="another template"):
        evaluate(tmp_path / "m.pt", legacy_synth, "synthetic", progress=False)


def test_prepare_records_and_checks_its_template(tmp_path):
    from aucues.train.data.prepare import ORIGINAL_DIR, _check_template, read_prepare_template

    (tmp_path / ORIGINAL_DIR).mkdir(parents=True)
    assert read_prepare_template(tmp_path) is None
    assert _check_template(tmp_path, None) == REFERENCE_TEMPLATE
    assert read_prepare_template(tmp_path) == REFERENCE_TEMPLATE
    with pytest.raises(AucuesError, match="another alignment template"):
        _check_template(tmp_path, LEGACY_TEMPLATE)
