"""CPU per request by process (serve/cpu_usage.py): the arithmetic on made-up snapshots, and the
process labels on a real tritonserver."""

import os

from aucues.serve import cpu_usage


def test_delta_by_label_counts_new_and_reused_pids_from_zero():
    before = {1: ("tritonserver", 10.0), 2: ("preprocess", 5.0), 3: ("classifier", 2.0)}
    after = {1: ("tritonserver", 10.5), 2: ("preprocess", 6.0), 4: ("preprocess", 0.25),  # a second instance
             3: ("postprocess", 0.5)}  # pid 3 reused by another model: counted from zero
    got = cpu_usage.delta(before, after)
    assert got == {"tritonserver": 0.5, "preprocess": 1.25, "postprocess": 0.5}


def test_per_request_totals_and_ceiling():
    row = cpu_usage.per_request({"preprocess": 2.4, "classifier": 0.8, "client (aucues bench)": 0.2}, 100, cores=2)
    assert row["cpu_ms_per_request"] == {"preprocess": 24.0, "classifier": 8.0, "client (aucues bench)": 2.0}
    assert list(row["cpu_ms_per_request"]) == ["preprocess", "classifier", "client (aucues bench)"]  # largest first
    assert row["cpu_ms_total"] == 34.0 and row["cpu_bound_per_s"] == round(2000 / 34, 1)
    assert cpu_usage.per_request({"x": 1.0}, 0) is None and cpu_usage.per_request({}, 10) is None


def test_own_process_grows_with_work():
    a = cpu_usage.own_process("me")
    sum(i * i for i in range(300_000))
    b = cpu_usage.own_process("me")
    assert list(a) == [os.getpid()] and cpu_usage.delta(a, b)["me"] > 0


def test_server_processes_label_every_model(triton):
    snap = cpu_usage.server_processes(triton.pid)
    labels = {label for label, _ in snap.values()}
    assert {"tritonserver", "preprocess", "classifier", "postprocess"} <= labels
    assert cpu_usage.local_server_pid(triton.http_url) == triton.pid
    assert cpu_usage.server_processes(None) == {} and cpu_usage.local_server_pid("203.0.113.5:8000") is None
