import json
import time

from aucues.benchmark import interleaved, line_plot, markdown_table, time_call, write_results


def test_time_call_measures_sleep():
    t = time_call(lambda: time.sleep(0.01), "sleep", batch=4, warmup=1, runs=5)
    assert len(t.samples_ms) == 5
    assert 9.0 <= t.p50 < 200.0
    s = t.summary()
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert abs(s["throughput_per_s"] - 4000.0 / t.p50) < 1e-6 * s["throughput_per_s"] + 0.01


def test_interleaved_orders_fast_and_slow():
    res = interleaved({"fast": lambda: None, "slow": lambda: time.sleep(0.005)}, warmup=1, runs=5)
    assert res["fast"].p50 < res["slow"].p50


def test_outputs(tmp_path):
    md = markdown_table([{"a": 1, "b": 0.12345}], ["a", "b"])
    assert "| a | b |" in md and "0.123" in md
    paths = write_results(tmp_path, "r", {"rows": [1]}, md)
    assert json.loads(open(paths["json"]).read())["rows"] == [1]
    line_plot(tmp_path / "p.png", {"x": ([1, 2], [3, 4])}, "b", "ms", "t")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
