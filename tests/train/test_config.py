"""TrainConfig: the paper's defaults, precedence defaults <- YAML <- flags, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from aucues.errors import AucuesError
from aucues.train.config import TrainConfig, load_yaml, resolve_config


def test_defaults_are_the_paper_recipe():
    c = TrainConfig().validate()
    assert (c.lr, c.momentum, c.nesterov, c.weight_decay) == (0.002, 0.9, True, 5e-4)
    assert (c.epochs, c.batch_size, c.image_size, c.au_lambda, c.au_layers) == (20, 224, 224, 9.0, (5,))
    assert c.backbone == "resnet50" and c.large_maps and c.map_kind == "class"
    # lr * 0.9 ** floor(epoch / 4), floored at 1e-7
    assert c.lr_at(0) == c.lr_at(3) == 0.002
    assert c.lr_at(4) == pytest.approx(0.002 * 0.9)
    assert c.lr_at(9) == pytest.approx(0.002 * 0.81)
    assert c.lr_at(10_000) == 1e-7


def test_precedence_defaults_yaml_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"epochs": 7, "au_lambda": 4, "backbone": "resnet18", "au_layers": [4, 5]}))
    c = resolve_config(f, {"epochs": 3, "batch_size": None, "lr": "0.01"})
    assert c.epochs == 3                    # flag beats file
    assert c.au_lambda == 4.0 and isinstance(c.au_lambda, float)  # file beats default, coerced
    assert c.backbone == "resnet18" and c.au_layers == (4, 5)
    assert c.batch_size == 224              # None = flag not given: default kept
    assert c.lr == 0.01
    assert resolve_config(None, {"au_layers": "4,5"}).au_layers == (4, 5)


def test_round_trip_through_saved_yaml(tmp_path):
    c = resolve_config(None, {"epochs": 2, "au_layers": "3 5", "weights": "random", "limit_train": 10})
    c.save(tmp_path / "config.yaml")
    again = resolve_config(tmp_path / "config.yaml")
    assert again == c


@pytest.mark.parametrize("over, words", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": "many"}, "epochs must be int"),
    ({"au_lambda": -1}, "au_lambda"),
    ({"au_layers": "6"}, "au_layers"),
    ({"dataset": "imagenet"}, "dataset must be one of"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"random_avg_p": 0}, "random_avg_p"),
    ({"map_kind": "per_class"}, "map_kind"),
    ({"nesterov": "maybe"}, "nesterov must be bool"),
    ({"lr": float("nan")}, "lr must be float"),
    ({"epoch": 3}, "unknown key(s): epoch (did you mean epochs?)"),
])
def test_bad_values_are_one_line_errors(over, words):
    with pytest.raises(AucuesError) as e:
        resolve_config(None, over)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(AucuesError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(AucuesError, match="invalid YAML"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(AucuesError, match="mapping"):
        load_yaml(lst)
    unk = tmp_path / "unk.yaml"
    unk.write_text("learning_rate: 0.1\n")
    with pytest.raises(AucuesError, match="unknown key"):
        resolve_config(unk)


def test_shipped_configs_resolve():
    from aucues.recipes import recipe_names, recipe_path

    assert recipe_names() == ["demo", "paper_affectnet", "paper_rafdb"]
    raf = resolve_config("paper_rafdb")   # by name: packaged recipes work from a wheel install
    aff = resolve_config(recipe_path("paper_affectnet.yaml"))
    assert raf.au_lambda == 4.0 and aff.au_lambda == 9.0
    for c in (raf, aff):
        assert c.backbone == "resnet50" and c.large_maps and c.au_layers == (5,) and c.image_size == 224
        assert c.epochs == 20 and c.batch_size == 224 and c.lr == 0.002
        assert c.codebook == "reference"  # the released models' codebook (docs/method.md §10)
    assert raf.dataset == "rafdb" and aff.dataset == "affectnet"
    demo = resolve_config("demo")
    assert demo.image_size < 224 and demo.epochs < 20


def test_unknown_recipe_names_the_packaged_ones(tmp_path):
    with pytest.raises(AucuesError, match="paper_rafdb"):
        resolve_config("paper_rafbd")
    with pytest.raises(AucuesError, match="not found"):
        resolve_config(tmp_path / "missing" / "demo.yaml")   # a path that does not exist is never swapped
