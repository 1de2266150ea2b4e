"""`aucues bench serve` against real tritonservers (the tiny model of conftest.py) and the in-process
pipeline: the output structure, the statistics, the plots. Never asserts a speed."""

import json
import threading
import time

import pytest

from tests.conftest import skip_unless_ci

from aucues.serve.bench import load_test, strip_dynamic_batching


def test_strip_dynamic_batching(repository):
    text = (repository / "classifier" / "config.pbtxt").read_text()
    out = strip_dynamic_batching(text)
    assert "dynamic_batching" in text and "dynamic_batching" not in out
    assert "instance_group" in out and "max_batch_size" in out


def test_load_test_counts_and_bounds():
    seen = set()

    def make(i):
        seen.add(threading.get_ident())
        return lambda: time.sleep(0.01)

    t0 = time.perf_counter()
    res = load_test(make, 3, 0.3)
    assert len(seen) == 3 and res["errors"] == 0 and res["requests"] >= 3
    assert time.perf_counter() - t0 < 5 and res["p50_ms"] >= 9


@pytest.mark.slow
def test_bench_serve_repository(cli, tmp_path, repository):
    from aucues.serve.tritonserver import find_tritonserver

    try:
        find_tritonserver()
    except Exception as e:  # noqa: BLE001
        skip_unless_ci(f"tritonserver binary absent: {e}")
    code, out = cli("bench", "serve", "--repository", repository, "--concurrency", "1,2", "--duration", "2", "--rounds", "2",
                    "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "serve.json").read_text())
    got = {(r["variant"], r["concurrency"]) for r in payload["rows"]}
    assert got == {(v, c) for v in ("triton-dynamic", "triton-nobatch", "inprocess") for c in (1, 2)}
    for r in payload["rows"]:
        assert r["errors"] == 0 and r["requests"] > 0 and r["p50_ms"] <= r["p99_ms"]
        if r["variant"].startswith("triton"):
            models = {s["model"] for s in r["server_stats"]}
            assert {"aucues", "preprocess", "classifier", "postprocess"} <= models
    ratios = {r["ratio"] for r in payload["ratios"]}
    assert "dynamic batching / no batching throughput" in ratios
    assert "Triton (dynamic batching) / in-process throughput" in ratios
    for name in ("serve_throughput.png", "serve_latency.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bench_serve_url(cli, tmp_path, triton, tiny_onnx):
    code, out = cli("bench", "serve", "--url", triton.http_url, "--onnx", tiny_onnx, "--concurrency", "2",
                    "--duration", "1", "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "serve.json").read_text())
    assert {r["variant"] for r in payload["rows"]} == {"triton", "inprocess"}
    triton_row = next(r for r in payload["rows"] if r["variant"] == "triton")
    cls = next(s for s in triton_row["server_stats"] if s["model"] == "classifier")
    assert cls["requests"] >= triton_row["requests"] and cls["compute_infer_ms"] > 0
    assert "Triton / in-process throughput" in {r["ratio"] for r in payload["ratios"]}
    # CPU per request: the local server is found from its URL, each model's stubs are charged apart
    assert {"tritonserver", "preprocess", "classifier", "postprocess", "client (aucues bench)"} <= set(
        triton_row["cpu_ms_per_request"])
    assert triton_row["cpu_ms_total"] == pytest.approx(sum(triton_row["cpu_ms_per_request"].values()), abs=0.05)
    inproc = next(r for r in payload["rows"] if r["variant"] == "inprocess")
    assert set(inproc["cpu_ms_per_request"]) == {"in-process pipeline"} and inproc["cpu_bound_per_s"] > 0
    ratio = next(r for r in payload["ratios"] if r["ratio"] == "Triton / in-process throughput")
    assert ratio["by_cpu"] == pytest.approx(inproc["cpu_ms_total"] / triton_row["cpu_ms_total"], rel=1e-2)
    assert "## CPU per request" in (tmp_path / "serve.md").read_text()
    # the perf_analyzer input file carries the same photo
    import base64

    pa = json.loads((tmp_path / "perf_analyzer_input.json").read_text())["data"][0]["image_bytes"]
    sent = base64.b64decode(pa["content"]["b64"])
    assert sent == open(payload["source"]["image"], "rb").read() and pa["shape"] == [len(sent)]


def test_bench_serve_needs_a_target(cli, tmp_path):
    code, out = cli("bench", "serve", "--out", tmp_path)
    assert code == 1 and "--url" in out and "Traceback" not in out
