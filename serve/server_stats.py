"""Triton's own per-model statistics (queue, compute_input/infer/output) as deltas over a window,
for `aucues bench serve`: read with tritonclient's statistics API before and after."""

from __future__ import annotations

STAT_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


def _num(v) -> float:
    return float(v) if v not in (None, "") else 0.0


def fetch_stats(url: str, protocol: str) -> dict[str, dict]:
    """model -> {"requests", "executions", "inferences", "<phase>_ns", "batches": {size: count}}."""
    if protocol == "http":
        import tritonclient.http as tc

        client = tc.InferenceServerClient(url)
        raw = client.get_inference_statistics()
    else:
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(url)
        raw = client.get_inference_statistics(as_json=True)
    client.close()
    out = {}
    for m in raw.get("model_stats", []):
        inf = m.get("inference_stats", {})
        d = {"requests": _num(inf.get("success", {}).get("count")),
             "executions": _num(m.get("execution_count")), "inferences": _num(m.get("inference_count"))}
        for phase in STAT_PHASES:
            d[f"{phase}_ns"] = _num(inf.get(phase, {}).get("ns"))
        d["batches"] = {int(b["batch_size"]): _num(b.get("compute_infer", {}).get("count"))
                        for b in m.get("batch_stats", [])}
        out[m["name"]] = d
    return out


def stats_delta(before: dict, after: dict) -> list[dict]:
    rows = []
    for name, a in after.items():
        b = before.get(name, {})
        req = a["requests"] - b.get("requests", 0.0)
        if req <= 0:
            continue
        execs = a["executions"] - b.get("executions", 0.0)
        row = {"model": name, "requests": int(req), "executions": int(execs),
               "avg_batch": round((a["inferences"] - b.get("inferences", 0.0)) / execs, 2) if execs > 0 else None}
        for phase in STAT_PHASES:
            row[f"{phase}_ms"] = round((a[f"{phase}_ns"] - b.get(f"{phase}_ns", 0.0)) / req / 1e6, 2)
        rows.append(row)
    return sorted(rows, key=lambda r: r["model"])
