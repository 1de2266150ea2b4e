"""NVIDIA's perf_analyzer beside `aucues bench serve`: the real binary from the tritonclient wheel,
against the session's real tritonserver (conftest.py), and its one-line error when a library is missing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import skip_unless_ci

from aucues.errors import AucuesError
from aucues.serve import perf_analyzer as pa


def _require():
    try:
        return pa.find_perf_analyzer()
    except AucuesError as e:
        skip_unless_ci(str(e))


def test_missing_library_is_one_line(monkeypatch, tmp_path, cli):
    monkeypatch.setattr(pa, "_cudart_dir", lambda: None)
    monkeypatch.setattr(pa, "_system_has", lambda lib: False)
    monkeypatch.setattr(pa, "_prefixes", lambda: [tmp_path])  # a binary, but no vendored libb64 beside it
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "perf_analyzer").write_text("")
    with pytest.raises(AucuesError, match=r"missing libb64.so.0d .* and libcudart.so.12 .*make setup"):
        pa.find_perf_analyzer()
    # checked before any server is reached or started
    code, out = cli("bench", "serve", "--url", "127.0.0.1:9", "--perf-analyzer", "--out", tmp_path / "o")
    assert code == 1 and out.strip().count("\n") == 0 and "error: perf_analyzer cannot run" in out


def test_parse_csv_converts_microseconds():
    text = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
            "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,"
            "p99 latency,Avg latency,request/response,response wait\n"
            "2,51.5,40,900,1200,300,25000,100,20,38000,41000,42000,45000,38500,0,0\n")
    (row,) = pa.parse_csv(text)
    assert row["concurrency"] == 2 and row["throughput_per_s"] == 51.5
    assert row["p50_ms"] == 38.0 and row["server_queue_ms"] == 1.2 and row["server_compute_infer_ms"] == 25.0


@pytest.mark.slow
def test_perf_analyzer_runs(triton, astronaut_path, tmp_path):
    _require()
    from aucues.serve.perf_analyzer import write_input

    data = write_input(astronaut_path, tmp_path / "in.json")
    res = pa.run(triton.grpc_url, "grpc", data, (1,), 0.5)
    (row,) = res["rows"]
    assert row["concurrency"] == 1 and row["throughput_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert res["command"].startswith("perf_analyzer -m aucues")


@pytest.mark.slow
def test_bench_serve_with_perf_analyzer(cli, tmp_path, repository):
    from aucues.serve.tritonserver import find_tritonserver

    _require()
    try:
        find_tritonserver()
    except Exception as e:  # noqa: BLE001
        skip_unless_ci(f"tritonserver binary absent: {e}")
    code, out = cli("bench", "serve", "--repository", repository, "--concurrency", "1,2", "--duration", "1.5",
                    "--rounds", "1", "--no-inprocess", "--no-batching-compare", "--perf-analyzer",
                    "--protocol", "grpc", "--out", tmp_path)
    assert code == 0, out
    payload = json.loads((tmp_path / "serve.json").read_text())
    p = payload["perf_analyzer"]
    assert p["variant"] == "triton-dynamic" and [r["concurrency"] for r in p["rows"]] == [1, 2]
    for c in p["comparison"]:
        assert c["aucues_per_s"] > 0 and c["perf_analyzer_per_s"] > 0 and c["aucues_over_pa"] > 0
    assert "perf_analyzer beside aucues" in (tmp_path / "serve.md").read_text()
