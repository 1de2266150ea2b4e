"""`aucues bench serve`'s results: the ratios between variants, and the JSON, Markdown and plots.

Two kinds of ratio per pair of variants and concurrency:
- value / paired / per_round: measured throughput (windows alternate, so a round's pair ran minutes
  apart at most);
- by_cpu: CPU ms per request of the second over the first (serve/cpu_usage.py), the throughput
  ratio a CPU-bound host would show. It moves much less than throughput with other tenants' load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aucues.serve.perf_analyzer import write_input


def serve_ratios(rows: list[dict]) -> list[dict]:
    by = {(r["variant"], r["concurrency"]): r for r in rows}
    out = []
    pairs = [("triton-dynamic", "inprocess", "Triton (dynamic batching) / in-process throughput"),
             ("triton", "inprocess", "Triton / in-process throughput"),
             ("triton-dynamic", "triton-nobatch", "dynamic batching / no batching throughput"),
             ("triton-onnx-landmarks", "triton-dynamic",
              "served ONNX landmark models / MediaPipe in preprocess throughput")]
    for c in sorted({r["concurrency"] for r in rows}):
        for a, b, what in pairs:
            ra, rb = by.get((a, c)), by.get((b, c))
            if ra and rb and rb["throughput_per_s"] > 0:
                per_round = [x / y for x, y in zip(ra.get("round_throughputs", []), rb.get("round_throughputs", []))
                             if y > 0]
                out.append({"ratio": what, "concurrency": c,
                            "value": round(ra["throughput_per_s"] / rb["throughput_per_s"], 3),
                            "paired": round(float(np.median(per_round)), 3) if per_round else None,
                            "per_round": [round(v, 3) for v in per_round],
                            "by_cpu": _by_cpu(ra, rb)})
    return out


def _by_cpu(a: dict, b: dict) -> float | None:
    ca, cb = a.get("cpu_ms_total"), b.get("cpu_ms_total")
    return round(cb / ca, 3) if ca and cb else None


def cpu_rows(rows: list[dict]) -> list[dict]:
    """One row per variant, concurrency and process: CPU ms per request, the total and the ceiling."""
    out = []
    for r in rows:
        for proc, ms in (r.get("cpu_ms_per_request") or {}).items():
            out.append({"variant": r["variant"], "concurrency": r["concurrency"], "process": proc,
                        "cpu_ms_per_request": ms})
        if r.get("cpu_ms_total"):
            out.append({"variant": r["variant"], "concurrency": r["concurrency"], "process": "**all**",
                        "cpu_ms_per_request": r["cpu_ms_total"],
                        "ceiling_per_s": f"{r['cpu_bound_per_s']} on {r['cores']} cores",
                        "measured_per_s": r["throughput_per_s"]})
    return out


def write_serve_results(payload: dict, out_dir: str | Path) -> dict[str, str]:
    from aucues.benchmark import line_plot, markdown_table, write_results

    out = Path(out_dir)
    rows = payload["rows"]
    md = f"# aucues bench serve\n\nimage {Path(payload['source']['image']).name} " \
         f"({payload['source']['image_bytes']} bytes), {payload['config']['duration']:g} s per point, protocol " \
         f"{payload['config']['protocol']}, load average {', '.join(f'{v:.2f}' for v in payload['load_avg'])}\n\n"
    md += markdown_table(rows, ["variant", "concurrency", "rounds", "requests", "errors", "throughput_per_s", "p50_ms",
                                "p90_ms", "p99_ms"])
    md += "\n## Ratios (same run)\n\n"
    md += markdown_table(payload["ratios"], ["ratio", "concurrency", "value", "paired", "per_round", "by_cpu"])
    md += "\nvalue = ratio of the throughputs over all rounds; paired = median of the per-round ratios " \
          "(the variants' windows alternate, so each round's pair ran minutes apart at most); by_cpu = CPU ms " \
          "per request of the second variant over the first's, the throughput ratio of a CPU-bound host.\n"
    cpu = cpu_rows(rows)
    if cpu:
        md += "\n## CPU per request (every process, measured windows)\n\n"
        md += markdown_table(cpu, ["variant", "concurrency", "process", "cpu_ms_per_request", "ceiling_per_s",
                                   "measured_per_s"])
        md += "\nceiling = cores x 1000 / all CPU ms per request: the throughput of a CPU-bound host " \
              "(serve/cpu_usage.py). A server given by --url counts only when it runs on this host.\n"
    stat_rows = [{"variant": r["variant"], "concurrency": r["concurrency"], **s}
                 for r in rows for s in r.get("server_stats", [])]
    if stat_rows:
        md += "\n## Triton statistics (per request, measured window)\n\n"
        md += markdown_table(stat_rows, ["variant", "concurrency", "model", "requests", "executions", "avg_batch",
                                         "queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms"])
    pa = payload.get("perf_analyzer")
    if pa:
        md += f"\n## perf_analyzer beside aucues ({pa['variant']}, same photo and concurrencies)\n\n"
        md += markdown_table(pa["comparison"], ["concurrency", "aucues_per_s", "perf_analyzer_per_s", "aucues_over_pa",
                                                "aucues_p50_ms", "pa_p50_ms", "pa_server_queue_ms",
                                                "pa_server_compute_ms"])
        md += f"\ncommand (per concurrency C): `{pa['command']}`\n"
    if payload["notes"]:
        md += "\n" + "".join(f"- {n}\n" for n in payload["notes"])
    paths = write_results(out, "serve", payload, md)
    paths["perf_analyzer_input"] = str(write_input(payload["source"]["image"], out / "perf_analyzer_input.json"))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    pick = lambda v, k: ([r["concurrency"] for r in rows if r["variant"] == v],  # noqa: E731
                         [r.get(k, float("nan")) for r in rows if r["variant"] == v])
    line_plot(out / "serve_throughput.png", {v: pick(v, "throughput_per_s") for v in variants}, "concurrency",
              "requests / s", "Throughput vs concurrency", logx=True)
    line_plot(out / "serve_latency.png", {v: pick(v, "p50_ms") for v in variants}, "concurrency",
              "p50 latency (ms)", "Latency vs concurrency", logx=True)
    paths.update(throughput_plot=str(out / "serve_throughput.png"), latency_plot=str(out / "serve_latency.png"))
    return paths
