"""`aucues import reference` of a released APViT folder (docs/import.md; train/reference_apvit.py): a
whole-model state dict under the reference's key names, random weights, imports into a model whose logits
match an independent functional forward of that state dict (tests/train/reference_apvit_layout.py). The
architecture is narrower and shallower than the paper's (SIZES patched on both sides) to stay fast."""

from __future__ import annotations

import pytest
import torch

from tests.train.reference_apvit_layout import apvit_forward, apvit_state, make_apvit_folder

TINY = {"units": (1, 1, 2), "depth": 6, "embed_dim": 32, "num_heads": 2}
GRID, K, R = 6, 30, 0.9          # a 6x6 IR-50 map = 48 px input; 30 tokens kept, then 27, 24
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture()
def tiny(monkeypatch):
    import aucues.train.models.apvit as apvit

    monkeypatch.setattr(apvit, "SIZES", TINY)


def _state(seed=0):
    return apvit_state(units=TINY["units"], depth=TINY["depth"], dim=TINY["embed_dim"], grid=GRID, seed=seed)


@pytest.mark.parametrize("batch", [1, 3])
def test_parity_with_independent_forward(tiny, tmp_path, batch):
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.reference_import import import_reference

    state = _state()
    folder = make_apvit_folder(tmp_path / "src", state, k=K, r=R)
    summary = import_reference(folder, tmp_path / "apvit.pt")
    assert summary["image_size"] == 8 * GRID and summary["method"] == "APVIT" and summary["cam_method"] == "none"
    model, info = load_checkpoint(tmp_path / "apvit.pt")
    assert model.config.method == "apvit" and model.config.method_options == {"k": K, "r": R}
    assert model.has_cam is False and info["au"]["layers"] == [1]
    x = torch.randn(batch, 3, 8 * GRID, 8 * GRID, generator=torch.Generator().manual_seed(1))
    ref = apvit_forward(state, x, K, R, TINY["num_heads"])
    with torch.no_grad():
        got = model.eval()(x)
    assert got.cam is None and ref.abs().max() > 0.1  # non-trivial logits
    torch.testing.assert_close(got.logits, ref, atol=ATOL, rtol=RTOL)
    # layer 1 is the IR-50 map the ViT reads: its attention is that map's channel mean
    assert got.attentions[1].shape == (batch, GRID, GRID)


BAD = {
    "missing key": (lambda s: s.pop("vit.blocks.3.attn.qkv.weight"), "does not match: missing vit.blocks.3.attn.qkv.weight"),
    "extra key": (lambda s: s.update({"vit.head.weight": torch.zeros(2)}), "unexpected vit.head.weight"),
    "wrong shape": (lambda s: s.update({"classification_head.fc.weight": torch.zeros(8, 32)}),
                    "wrong shape classification_head.fc.weight (8, 32)"),
    "no position embedding": (lambda s: s.update({"vit.patch_pos_embed": torch.zeros(1, 35, 32)}),
                              "vit.patch_pos_embed must be (1, g*g, D)"),
    "nan": (lambda s: s["vit.norm.weight"].fill_(float("nan")), "non-finite values in vit.norm.weight"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoint_is_one_line_exit_1(cli, tiny, tmp_path, case):
    state = _state()
    spoil, words = BAD[case]
    spoil(state)
    folder = make_apvit_folder(tmp_path / "src", state, k=K, r=R)
    out = tmp_path / "out" / "m.pt"
    code, text = cli("import", "reference", folder, "--out", out)
    lines = [l for l in text.strip().splitlines() if l.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], text
    assert not out.exists()


def test_bad_config_is_one_line(cli, tiny, tmp_path):
    import yaml

    folder = make_apvit_folder(tmp_path / "src", _state(), k=K, r=R)
    cfg = yaml.safe_load((folder / "config_model.yaml").read_text())
    cfg["model"]["apvit_attn_method"] = "PARAM_G_ATT"
    (folder / "config_model.yaml").write_text(yaml.safe_dump(cfg))
    code, text = cli("import", "reference", folder, "--out", tmp_path / "m.pt")
    assert code == 1 and "apvit_attn_method 'PARAM_G_ATT' is not supported" in text, text
    cfg["model"].update(apvit_attn_method="SUM_ABS_1", apvit_k=40)  # more tokens than the 6x6 map has
    (folder / "config_model.yaml").write_text(yaml.safe_dump(cfg))
    code, text = cli("import", "reference", folder, "--out", tmp_path / "m.pt")
    assert code == 1 and "apvit option k must be in [1, 36]" in text, text
    torch.save({"encoder": {}, "classification_head": {}}, folder / "model.pt")
    code, text = cli("import", "reference", folder, "--out", tmp_path / "m.pt")
    assert code == 1 and "expected APViT's whole-model state dict" in text, text
    assert not (tmp_path / "m.pt").exists()
