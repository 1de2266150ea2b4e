"""The demo's serving part: start tritonserver on the repository, predict over HTTP and gRPC on
synthetic test faces and on the real photos, write overlays, run a short serving benchmark, stop."""

from __future__ import annotations

import json
from pathlib import Path


def _synthetic_inputs(data: Path, n: int) -> list[Path]:
    """Up to n test images, spread over the classes (round robin on the label file)."""
    from aucues.rafdb_layout import LABEL_FILE, RAF_ALIGNED_DIR, aligned_key, read_label_file

    by_class: dict[int, list[Path]] = {}
    for name, label in read_label_file(data / LABEL_FILE):
        if name.startswith("test_"):
            by_class.setdefault(label, []).append(data / aligned_key(RAF_ALIGNED_DIR, name))
    out: list[Path] = []
    while len(out) < n and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(out) < n:
                out.append(by_class[c].pop(0))
    return out


def _truth(data: Path) -> dict[str, str]:
    from aucues.labels import CLASS_NAMES
    from aucues.rafdb_layout import LABEL_FILE, RAF_ALIGNED_DIR, aligned_key, read_label_file

    return {Path(aligned_key(RAF_ALIGNED_DIR, name)).name: CLASS_NAMES[label]
            for name, label in read_label_file(data / LABEL_FILE)}


def serving_step(cfg, p: dict, console) -> dict:
    from aucues.assets import available_photos
    from aucues.io import atomic_write_text
    from aucues.serve.predict import run_predict
    from aucues.serve.tritonserver import TritonServer

    synth = _synthetic_inputs(p["data"], cfg.max_predict_images)
    photos = available_photos()
    pred = p["pred"]
    pred.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    with console.status("starting tritonserver ..."):
        server = TritonServer(p["repo"]).start()
    try:
        console.print(f"tritonserver ready: HTTP {server.http_url}, gRPC {server.grpc_url} (pid {server.pid})")
        summary["server"] = f"ready in {getattr(server, 'start_seconds', 0):.1f} s; HTTP {server.http_url}, gRPC {server.grpc_url}"
        results: dict[str, list[dict]] = {}
        for proto, url, inputs in (("http", server.http_url, synth + photos), ("grpc", server.grpc_url, photos)):
            lines: list[str] = []
            with console.status(f"predicting {len(inputs)} images over {proto} ..."):
                ok, failed = run_predict([str(x) for x in inputs], url=url, protocol=proto,
                                         overlays=pred / f"overlays_{proto}", as_json=True, emit=lines.append)
            rows = [json.loads(x) for x in lines if x.strip().startswith("{")]
            results[proto] = rows
            atomic_write_text(pred / f"predictions_{proto}.jsonl", "\n".join(lines) + "\n")
            console.print(f"{proto}: {ok} answered, {failed} refused (e.g. no face) -> {pred / f'predictions_{proto}.jsonl'}")
        truth = _truth(p["data"])
        synth_rows = [r for r in results["http"] if Path(r["input"]).name in truth and "label" in r]
        correct = sum(1 for r in synth_rows if r["label"] == truth[Path(r["input"]).name])
        summary["predictions"] = (f"{len(results['http'])} over HTTP ({len(synth)} synthetic test faces, "
                                  f"{len(photos)} real photos), {len(results['grpc'])} over gRPC; "
                                  f"served accuracy on the synthetic faces {correct}/{len(synth_rows)}")
        summary["overlays"] = [str(x) for x in sorted((pred / "overlays_http").glob("*.png"))]
        summary.update(_bench(cfg, p, server, console))
    finally:
        with console.status("stopping tritonserver ..."):
            server.stop()
    console.print("tritonserver stopped")
    return summary


def _bench(cfg, p: dict, server, console) -> dict:
    from aucues.serve.bench import ServeBenchConfig, run_serve_bench
    from aucues.serve.bench_report import write_serve_results

    bcfg = ServeBenchConfig(concurrency=cfg.bench_concurrency, duration=cfg.bench_seconds, protocol="grpc",
                            compare_batching=False)
    with console.status("serving benchmark ...") as st:
        payload = run_serve_bench(url=server.grpc_url, onnx=p["onnx"], cfg=bcfg,
                                  progress=lambda m: st.update(f"serving benchmark: {m}"))
    paths = write_serve_results(payload, p["bench"])
    md = Path(paths["markdown"]).read_text() if "markdown" in paths else ""
    plots = [v for v in paths.values() if str(v).endswith(".png")]
    return {"bench_markdown": md, "bench_plots": plots, "bench_json": paths.get("json")}
