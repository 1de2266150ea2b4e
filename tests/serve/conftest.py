"""Serving fixtures: a tiny real model (resnet18 at 96 px, random weights) exported through the
project's exporter, a repository built from it, and one real tritonserver for the whole session."""

from __future__ import annotations

import pytest

from tests.conftest import skip_unless_ci

IMAGE_SIZE = 96


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    import torch

    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", weights="random"), PreprocessConfig(image_size=IMAGE_SIZE))
    path = tmp_path_factory.mktemp("serve_model") / "tiny.pt"
    save_checkpoint(path, model)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint):
    from aucues.export.config import ExportConfig
    from aucues.export.onnx_export import export_onnx

    out = tiny_checkpoint.with_suffix(".onnx")
    # verified (~10 s): `repository build` refuses an unverified model (issue 13)
    rep = export_onnx(tiny_checkpoint, out, ExportConfig(verify=True, write_report=False))
    assert rep.verified, rep.failures
    return out


@pytest.fixture(scope="session")
def repository(tiny_onnx, tmp_path_factory):
    from aucues.serve.repository import build_repository

    out = tmp_path_factory.mktemp("serve_repo") / "repo"
    build_repository(out, onnx=tiny_onnx, backend="python", max_batch=8, max_queue_delay_us=5000)
    return out


@pytest.fixture(scope="session")
def triton(repository):
    """A real tritonserver on free loopback ports, stopped at the end of the session."""
    from aucues.errors import AucuesError
    from aucues.serve.tritonserver import TritonServer, find_tritonserver

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    server = TritonServer(repository)
    server.start(timeout=180)
    yield server
    code = server.stop()
    assert code == 0, f"tritonserver exit code {code}; log:\n{server.last_log}"


@pytest.fixture(scope="session")
def pipeline(tiny_onnx):
    from aucues.serve.pipeline import Pipeline

    p = Pipeline(tiny_onnx)
    yield p
    p.close()


@pytest.fixture(scope="session")
def astronaut_bytes(astronaut_path):
    return astronaut_path.read_bytes()
