"""APViT through the real Triton ensemble: a model without a CAM is served (no `cam` anywhere in the
ensemble), its label and layer-1 attention equal the in-process pipeline's, and the AU evidence comes
from that attention. Built narrower and shallower (train/models/apvit.py SIZES) to stay small."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import skip_unless_ci

SIZE = 64
TINY = {"units": (1, 1, 1), "depth": 6, "embed_dim": 32, "num_heads": 2}


@pytest.mark.slow  # ~30 s: export + a tritonserver with MediaPipe in the preprocess model
def test_apvit_ensemble_serves_without_cam(tmp_path, astronaut_path, monkeypatch):
    import aucues.train.models.apvit as apvit
    from aucues.errors import AucuesError
    from aucues.export import ExportConfig, export_onnx
    from aucues.preprocessing import PreprocessConfig
    from aucues.serve.client import AucuesClient
    from aucues.serve.pipeline import Pipeline
    from aucues.serve.repository import build_repository
    from aucues.serve.tritonserver import TritonServer, find_tritonserver
    from aucues.train.models import ModelConfig, build_model

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    monkeypatch.setattr(apvit, "SIZES", TINY)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="apvit", method="apvit", method_options={"k": 40}),
                        PreprocessConfig(image_size=SIZE))
    with torch.no_grad():
        model.classification_head.fc.weight.normal_(0, 0.5)
    onnx = tmp_path / "apvit.onnx"
    assert export_onnx(model, onnx, ExportConfig(write_report=False)).verified
    repo = tmp_path / "repo"
    build_repository(repo, onnx=onnx, backend="python", max_batch=4)
    data = astronaut_path.read_bytes()
    pipe = Pipeline(onnx)
    try:
        local = pipe.predict(data)
        server = TritonServer(repo)
        server.start(timeout=180)
        try:
            with AucuesClient(server.http_url, "http") as client:
                client.check_ready()
                assert client.spec.has_cam is False and client.spec.attention_layer == 1
                pred = client.predict(data, maps=True)
        finally:
            assert server.stop() == 0, server.last_log
    finally:
        pipe.close()
    res, maps = pred.result, pred.maps
    assert "cam" not in maps and maps["attention"].shape == (SIZE, SIZE)
    assert res["label"] == local["label"] and res["topk"] == local["topk"]
    for n, p in local["probabilities"].items():
        assert res["probabilities"][n] == pytest.approx(p, abs=1e-4)
    assert [r["au"] for r in res["au_evidence"]] == [r["au"] for r in local["au_evidence"]]
    assert np.isfinite(maps["attention"]).all() and 0 <= maps["attention"].min() and maps["attention"].max() <= 1
