"""`aucues bench model` runs every backend it can on the same inputs and writes JSON, Markdown and
plots; backends it cannot run are listed with a reason. Never asserts a speed."""

import json

from aucues.export.bench import ModelBenchConfig


def test_bench_model_outputs(cli, tmp_path):
    code, out = cli("bench", "model", "--backbone", "resnet18", "--image-size", "32", "--batch-sizes", "2,1",
                    "--runs", "2", "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "model.json").read_text())
    assert payload["machine"]["cpu_count"] >= 1 and "onnxruntime" in payload["machine"]
    got = {(r["backend"], r["batch"]) for r in payload["rows"]}
    for backend in ("torch", "ort-full", "ort-logits"):
        assert {(backend, 1), (backend, 2)} <= got
    for r in payload["rows"]:
        assert r["runs"] >= 2 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["throughput_per_s"] > 0
    ratios = {(r["ratio"], r["batch"]) for r in payload["ratios"]}
    assert ("ORT full graph / logits-only", 1) in ratios and ("ORT CPU full / PyTorch eager", 1) in ratios
    # the two graphs really differ: the logits-only one has a single output
    import onnx

    outs = {k: [o.name for o in onnx.load(v).graph.output] for k, v in payload["model"]["graphs"].items()}
    assert outs["logits"] == ["logits"] and "cam" in outs["full"]
    if not any(r["backend"].startswith("trt") for r in payload["rows"]):
        assert payload["skipped"]["trt"]  # said why, not silently dropped
    for name in ("model_latency.png", "model_throughput.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "model.md").read_text()
    assert "| backend | batch |" in md and "ort-logits" in md


def test_bench_model_needs_one_source(cli, tmp_path):
    code, out = cli("bench", "model", "--out", tmp_path)
    assert code == 1 and "exactly one of" in out and "Traceback" not in out


def test_config_rejects_unknown_backend():
    import pytest

    from aucues.errors import AucuesError

    with pytest.raises(AucuesError, match="unknown backend"):
        ModelBenchConfig(backends=("torch", "tvm"))
