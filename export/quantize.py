"""INT8 for CPUs: checkpoint -> FP32 ONNX (export_onnx, verified against PyTorch) -> QDQ static
quantization (onnxruntime.quantization, int8 weights per output channel, uint8 activations whose
ranges come from calibration faces) -> verification against the FP32 graph on a check set that
calibration never saw -> metadata (int8, verified=<result>) -> atomic write + report.

Why QDQ: the graph stays standard ONNX (QuantizeLinear/DequantizeLinear around float ops), so every
ONNX runtime can load it, and ONNX Runtime fuses each Q-Conv-DQ into an int8 convolution (VNNI on
these CPUs). Why the head stays float (exclude="head", the default): `cam` is the classifier's 1x1
convolution and logits/probabilities are its spatial mean + bias and softmax (docs/method.md §6).
Quantized, they would leave the graph as 256 levels over the calibrated range (values past it clip),
for a convolution that is ~0.1% of ResNet50's work. The attention maps need no exclusion: each is the
channel mean (ReduceMean, not quantized) of an activation that is dequantized first, so per-channel
rounding averages out over hundreds of channels (docs/export.md, "INT8").
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from aucues.errors import AucuesError
from aucues.export.config import ExportConfig
from aucues.export.report import ExportReport

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
EXCLUDE_MODES = ("head", "none")


@dataclass
class Int8Config:
    calibration: str = ""             # folder of aligned faces (any size; resized to the model's input)
    check_set: str | None = None      # a separate folder; None: a held-out share of `calibration`
    check_share: float = 0.2          # share of `calibration` held out as the check set (when no check_set)
    max_calibration: int = 256        # calibration images used at most (the first by a stable hash order)
    method: str = "minmax"            # activation-range calibration (onnxruntime CalibrationMethod)
    per_channel: bool = True          # weight scales per output channel (per-tensor loses ~1% top-1 on CNNs)
    exclude: str = "head"             # "head": classifier conv + logits/softmax stay float; "none"
    activations: str = "uint8"        # "uint8" (asymmetric: ORT's fastest CPU kernels) or "int8" (symmetric,
                                      # zero point 0: what TensorRT's explicit quantization accepts)
    min_top1: float = 0.99            # top-1 agreement with the FP32 graph on the check set
    min_cosine: float = 0.98          # per-image cosine of cam and every attention_k vs FP32 (worst image)
    batch: int = 8                    # batch of the check runs (batch 1 is checked against it too)

    def __post_init__(self) -> None:
        if not self.calibration:
            raise AucuesError("--int8 needs --calibration DIR (a folder of aligned face images)")
        if self.method not in CALIBRATION_METHODS:
            raise AucuesError(f"unknown calibration method '{self.method}'; choose one of: {', '.join(CALIBRATION_METHODS)}")
        if self.activations not in ("uint8", "int8"):
            raise AucuesError(f"activations must be uint8 or int8, got '{self.activations}'")
        if self.exclude not in EXCLUDE_MODES:
            raise AucuesError(f"unknown exclude mode '{self.exclude}'; choose one of: {', '.join(EXCLUDE_MODES)}")
        if not 0.0 < float(self.check_share) < 1.0:
            raise AucuesError(f"check_share must be in (0, 1), got {self.check_share}")
        if not (0.0 <= self.min_top1 <= 1.0 and -1.0 <= self.min_cosine <= 1.0):
            raise AucuesError("min_top1 must be in [0, 1] and min_cosine in [-1, 1]")
        if int(self.max_calibration) < 1 or int(self.batch) < 1:
            raise AucuesError("max_calibration and batch must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------
# Faces: the model's own preprocessing (PreprocessConfig.normalize), one source of truth


def _stable_order(keys: list[str]) -> list[str]:
    # A hash order, not the sorted one: RAF-DB-style names sort by split and class, and a prefix of
    # them would calibrate on one expression only.
    return sorted(keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest())


def split_faces(cfg: Int8Config) -> tuple[list[Path], list[Path]]:
    """(calibration files, check files), disjoint by construction."""
    from aucues.landmark_batch import list_images

    root = Path(cfg.calibration)
    keys = _stable_order(list_images(root))
    if cfg.check_set:
        check_root = Path(cfg.check_set)
        check = [check_root / k for k in _stable_order(list_images(check_root))]
        calib = [root / k for k in keys]
        overlap = {p.resolve() for p in calib} & {p.resolve() for p in check}
        if overlap:
            raise AucuesError(f"the check set shares {len(overlap)} file(s) with the calibration set "
                              f"(e.g. {sorted(overlap)[0]}); it must be independent")
    else:
        if len(keys) < 2:
            raise AucuesError(f"{root}: {len(keys)} image(s); calibration needs at least 2 "
                              "(some are held out as the check set)")
        n_check = min(len(keys) - 1, max(1, int(round(len(keys) * cfg.check_share))))
        check, calib = [root / k for k in keys[:n_check]], [root / k for k in keys[n_check:]]
    if not calib or not check:
        raise AucuesError(f"no images in {cfg.check_set if not check else root}")
    return calib[: int(cfg.max_calibration)], check


def load_faces(paths: list[Path], preprocess) -> np.ndarray:
    """float32 (N, C, S, S): each aligned face resized to the model's size, then normalised."""
    import cv2

    from aucues.io import read_image

    s = preprocess.image_size
    out = []
    for p in paths:
        img = read_image(p)
        if img.shape[:2] != (s, s):
            interp = cv2.INTER_AREA if max(img.shape[:2]) > s else cv2.INTER_LINEAR
            img = cv2.resize(img, (s, s), interpolation=interp)
        out.append(preprocess.normalize(img))
    return np.stack(out).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Quantization


def head_nodes(model) -> list[str]:
    """The node that produces `cam` and every node downstream of it (logits mean + bias, softmax)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    if "cam" not in producers:
        return []
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    names, todo = [], [producers["cam"]]
    while todo:
        n = todo.pop()
        if n.name in names:
            continue
        names.append(n.name)
        for o in n.output:
            todo.extend(consumers.get(o, []))
    return names


def _name_nodes(model) -> None:
    # nodes_to_exclude works by name; exporters may leave nodes unnamed
    seen = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def quantize(fp32_path: Path, out_path: Path, faces: np.ndarray, cfg: Int8Config, workdir: Path) -> dict:
    """QDQ static quantization of fp32_path into out_path; returns what was done (for the metadata)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepped = workdir / "prepped.onnx"
    # shape inference + ORT's basic graph optimisation, as ONNX Runtime recommends before quantizing
    quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
    model = onnx.load(str(prepped))
    _name_nodes(model)
    onnx.save(model, str(prepped))
    exclude = head_nodes(model) if cfg.exclude == "head" else []

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(range(len(faces)))

        def get_next(self):
            i = next(self._it, None)
            return None if i is None else {"image": faces[i: i + 1]}

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[cfg.method]
    symmetric = cfg.activations == "int8"
    # ORT's quantizer logs a root-logger warning per try of per-channel axis 1 on a rank-1 weight
    # (every LayerNorm of a transformer: hundreds of lines); they change nothing, the report says
    # what was quantized and the verification judges it
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(prepped), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=cfg.per_channel,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method, nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
    finally:
        root.setLevel(level)
    quantized = onnx.load(str(out_path))
    ops = [n.op_type for n in quantized.graph.node]
    return {"format": "QDQ", "weights": "int8 per-channel" if cfg.per_channel else "int8 per-tensor",
            "activations": "int8 symmetric" if symmetric else "uint8", "calibration_method": cfg.method, "calibration_images": int(len(faces)),
            "excluded_nodes": exclude, "quantize_linear_nodes": ops.count("QuantizeLinear"),
            "reference": "fp32 onnx"}


# ---------------------------------------------------------------------------------------------------
# Verification against the FP32 graph


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    return np.where((na == 0) & (nb == 0), 1.0, cos)


def _run(sess, x: np.ndarray, batch: int) -> list[np.ndarray]:
    parts = [sess.run(None, {"image": x[i: i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def verify_int8(int8_path: Path, fp32_path: Path, check: np.ndarray, names: list[str], cfg: Int8Config) -> dict:
    """Top-1 agreement and per-image cosines of the explanation outputs, INT8 vs FP32 (ORT CPU)."""
    from aucues.export.verify import check_model, ort_session

    res = {"checker": check_model(int8_path), "failures": [], "errors": [], "check_images": int(len(check))}
    if res["checker"] != "ok":
        res["failures"].append(f"onnx.checker: {res['checker']}")
        return res
    try:
        q, f = ort_session(int8_path), ort_session(fp32_path)
    except Exception as e:  # noqa: BLE001
        res["failures"].append(f"onnxruntime cannot load the int8 model: {str(e).strip().splitlines()[0]}")
        return res
    got_names = [o.name for o in q.get_outputs()]
    if got_names != names:
        res["failures"].append(f"outputs are {got_names}, expected {names}")
        return res
    ref, got = _run(f, check, cfg.batch), _run(q, check, cfg.batch)
    out = dict(zip(names, range(len(names))))
    agree = float(np.mean(ref[out["logits"]].argmax(1) == got[out["logits"]].argmax(1)))
    res["top1_agreement"] = agree
    if agree < cfg.min_top1:
        res["failures"].append(f"top-1 agreement with FP32 {agree:.4f} < {cfg.min_top1} on {len(check)} check images")
    for name in names:
        r, g = ref[out[name]], got[out[name]]
        cos = _cosines(r, g)
        entry = {"output": name, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
                 "max_abs": float(np.abs(r.astype(np.float64) - g).max()), "peak": float(np.abs(r).max()),
                 "ok": True}
        if name == "cam" or name.startswith("attention_"):
            entry["limit_cosine"] = cfg.min_cosine
            entry["ok"] = bool(cos.min() >= cfg.min_cosine)
            if not entry["ok"]:
                res["failures"].append(f"{name}: worst per-image cosine vs FP32 {cos.min():.4f} < {cfg.min_cosine}")
        res["errors"].append(entry)
    # the dynamic batch survives: one image alone gives what it gave inside a batch
    one = q.run(None, {"image": check[:1]})
    worst = float(min(_cosines(a, b[:1]).min() for a, b in zip(one, got)))
    res["batch1_vs_batchN_cosine"] = worst
    if worst < 0.9999:
        res["failures"].append(f"batch 1 and batch {min(cfg.batch, len(check))} disagree (cosine {worst:.6f})")
    return res


# ---------------------------------------------------------------------------------------------------
# The whole step


def export_int8(model_or_checkpoint, out: str | os.PathLike, cfg: ExportConfig | None = None,
                qcfg: Int8Config | None = None, progress: Callable[[str], None] | None = None) -> ExportReport:
    """Export (FP32, verified against PyTorch), quantize, verify against FP32, write `out` + report.
    Like export_onnx it never raises for a verification failure: report.verified says."""
    import dataclasses

    import onnx

    from aucues.io import atomic_write_bytes
    from aucues.export.metadata import metadata_from_model, set_metadata
    from aucues.export.onnx_export import export_onnx
    from aucues.preprocessing import PreprocessConfig

    cfg = cfg or ExportConfig()
    if qcfg is None:
        raise AucuesError("export_int8 needs an Int8Config (calibration folder)")
    if cfg.fp16:
        raise AucuesError("--int8 and --fp16 exclude each other")
    if cfg.outputs != "all":
        raise AucuesError("--int8 keeps the explanation outputs: use --outputs all")
    step = progress or (lambda _m: None)
    out = Path(out)
    t_start = time.perf_counter()
    calib_files, check_files = split_faces(qcfg)  # bad folders fail before minutes of export
    with tempfile.TemporaryDirectory(prefix="aucues-int8-") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        report = export_onnx(model_or_checkpoint, fp32, dataclasses.replace(cfg, write_report=False), step)
        report.path, report.int8 = str(out), True
        report.config = {**cfg.to_dict(), "int8": qcfg.to_dict()}
        if cfg.verify and not report.verified:
            report.failures = [f"FP32 export (before quantization): {f}" for f in report.failures]
            report.verified = False
            return _finish(report, None, out, cfg, t_start)
        fp32_model = onnx.load(str(fp32))
        meta = metadata_from_model(fp32_model, str(fp32))
        pre = PreprocessConfig.from_dict(meta["preprocess"])
        step(f"reading {len(calib_files)} calibration and {len(check_files)} check faces")
        calib, check = load_faces(calib_files, pre), load_faces(check_files, pre)
        step(f"quantizing (QDQ, {qcfg.method} calibration on {len(calib)} faces)")
        t = time.perf_counter()
        int8 = tmp / "int8.onnx"
        info = quantize(fp32, int8, calib, qcfg, tmp)
        report.timings_s["quantize"] = round(time.perf_counter() - t, 4)
        proto = onnx.load(str(int8))
        meta.update(int8=True, quantization={**info, "check_images": len(check)}, verified=False)
        if cfg.verify:
            step(f"verifying against FP32 on {len(check)} check faces")
            t = time.perf_counter()
            res = verify_int8(int8, fp32, check, report.outputs, qcfg)
            report.timings_s["verify_int8"] = round(time.perf_counter() - t, 4)
            report.failures, report.checker = res["failures"], res["checker"]
            report.errors = res["errors"]
            report.verified = not res["failures"]
            report.notes.append(f"INT8 verified against the FP32 graph on {len(check)} check faces "
                                f"({'separate folder' if qcfg.check_set else 'held out of the calibration folder'})")
            meta["quantization"].update({k: res[k] for k in ("top1_agreement", "batch1_vs_batchN_cosine") if k in res})
        else:
            report.verified = False
            report.notes.append("verification skipped (verify=False)")
        meta["verified"] = report.verified
        report.quantization = meta["quantization"]
        set_metadata(proto, meta)
        proto.producer_name = "aucues"
        data = proto.SerializeToString()
        step(f"writing {out}")
        atomic_write_bytes(out, data)
        report.file_size_bytes = len(data)
    return _finish(report, proto, out, cfg, t_start)


def _finish(report: ExportReport, proto, out: Path, cfg: ExportConfig, t_start: float) -> ExportReport:
    report.timings_s["total"] = round(time.perf_counter() - t_start, 4)
    if cfg.write_report:
        report.save()
    return report
