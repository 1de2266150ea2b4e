"""Issue 13: `aucues repository build` (the real console script) refuses an ONNX whose export
verification failed (NaN weights: it would answer NaN), was skipped, or is not recorded;
--allow-unverified opts in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_unless_ci

REPO = Path(__file__).resolve().parents[2]


def _aucues(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "aucues"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "aucues"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def nan_onnx(tmp_path_factory):
    """resnet18 at 96 px with one NaN weight, exported with verification (which must fail)."""
    import torch

    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", weights="random"), PreprocessConfig(image_size=96))
    with torch.no_grad():
        next(p for p in model.parameters() if p.ndim == 4).view(-1)[0] = float("nan")
    d = tmp_path_factory.mktemp("nan_model")
    save_checkpoint(d / "nan.pt", model)
    rep = export_onnx(d / "nan.pt", d / "nan.onnx", ExportConfig(verify=True, write_report=False))
    assert not rep.verified  # the exporter's verdict; the file is still written, marked unverified
    return d / "nan.onnx"


def _without_verified_record(src: Path, dst: Path) -> Path:
    import json

    import onnx

    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == "aucues":
            meta = json.loads(p.value)
            meta.pop("verified")
            p.value = json.dumps(meta)
    keep = [p for p in m.metadata_props if p.key != "verified"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.save(m, str(dst))
    return dst


def test_failed_verification_refused_unless_allowed(nan_onnx, tmp_path):
    r = _aucues("repository", "build", "--onnx", str(nan_onnx), "--out", str(tmp_path / "repo"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and "verification" in r.stderr and "--allow-unverified" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "repo").exists()
    r = _aucues("repository", "build", "--onnx", str(nan_onnx), "--out", str(tmp_path / "repo"),
                "--allow-unverified", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    assert json.loads(r.stdout)["verified"] is False
    assert (tmp_path / "repo" / "aucues" / "config.pbtxt").is_file()


def test_missing_verification_record_refused_and_verified_accepted(tiny_onnx, tmp_path):
    bare = _without_verified_record(tiny_onnx, tmp_path / "bare.onnx")
    r = _aucues("repository", "build", "--onnx", str(bare), "--out", str(tmp_path / "r1"))
    assert r.returncode == 1 and "no verification record" in r.stderr, r.stdout + r.stderr
    r = _aucues("repository", "build", "--onnx", str(tiny_onnx), "--out", str(tmp_path / "r2"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    assert json.loads(r.stdout)["verified"] is True


def test_served_nan_model_gives_errors_never_labels(nan_onnx, tmp_path, astronaut_bytes):
    """Opting in serves the NaN model; its answers are errors (one-row: the request; several rows:
    each row's status), never a label."""
    from aucues.errors import AucuesError
    from aucues.serve.client import AucuesClient, PredictError
    from aucues.serve.repository import build_repository
    from aucues.serve.tritonserver import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(str(e))
    repo = tmp_path / "nan_repo"
    build_repository(repo, onnx=nan_onnx, max_batch=4, instances=1, allow_unverified=True)
    with TritonServer(repo) as server, AucuesClient(server.http_url) as c:
        with pytest.raises(PredictError, match="non-finite"):
            c.predict(astronaut_bytes)
        rows = c.predict_many([astronaut_bytes, b"not an image" * 10, astronaut_bytes])
        assert all(isinstance(r, PredictError) for r in rows), rows
        assert "non-finite" in str(rows[0]) and "not an image" in str(rows[1])
        out = c.infer_raw([astronaut_bytes, astronaut_bytes])
        assert list(out["label"].reshape(-1)) == [b"", b""] and not out["probabilities"].any()
