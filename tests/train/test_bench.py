"""`aucues bench train`: CE-only vs CE + AU step, interleaved; outputs written. No speed asserts."""

import json


def test_bench_train_cli(cli, tmp_path):
    code, out = cli("bench", "train", "--backbone", "resnet18", "--image-size", "32", "--batch-size", "7",
                    "--runs", "2", "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "train.json").read_text())
    rows = {r["variant"]: r for r in payload["rows"]}
    assert set(rows) == {"ce", "ce+au"}
    assert rows["ce"]["loss"]["align"] == 0.0            # disabled loss: CE only
    assert rows["ce+au"]["loss"]["align"] > 0.0          # real AU maps for the non-neutral samples
    assert payload["config"]["valid_maps"] == 6          # 7 classes, Neutral has no map
    assert len(payload["samples"]["ce"]) == len(payload["samples"]["ce+au"]) == 2
    r = payload["ratios"][0]
    assert r["paired_q25"] <= r["paired"] <= r["paired_q75"] and r["p50_ratio"] > 0
    assert (tmp_path / "train_step.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_train_bad_layers(cli, tmp_path):
    code, out = cli("bench", "train", "--layers", "7", "--image-size", "32", "--runs", "1", "--out", tmp_path)
    assert code == 1 and "layers" in out and "Traceback" not in out
