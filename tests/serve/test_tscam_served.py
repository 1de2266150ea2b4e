"""A TS-CAM model end to end through the real entry points and a real tritonserver: a released-layout
TS-CAM folder (random DeiT-S weights) -> `aucues import reference` -> `aucues export` (logits, CAM and
layer attentions, verified against PyTorch) -> `aucues repository build` -> the `aucues` ensemble over
HTTP, whose answer (label, probabilities, CAM and attention maps, AU evidence) equals in-process ONNX
Runtime plus the same postprocess on the same aligned face."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import skip_unless_ci
from tests.train.reference_tscam_layout import make_tscam_folder

SIZE = 64  # a 4x4 patch-token grid; DeiT-S at its real width and depth
ATOL = 1e-4


@pytest.mark.slow  # DeiT-S export with verification (~20 s) plus its own tritonserver: ~1 min here
def test_imported_tscam_served_by_the_ensemble(cli, tmp_path, astronaut_path):
    import onnx

    from aucues.errors import AucuesError
    from aucues.serve.client import AucuesClient
    from aucues.serve.pipeline import Pipeline, postprocess
    from aucues.serve.tritonserver import TritonServer, find_tritonserver

    folder, _ = make_tscam_folder(tmp_path / "shared-trained-models", "RAF-DB", au=True, crop=SIZE, seed=5)
    ckpt, onnx_path, repo = tmp_path / "tscam.pt", tmp_path / "tscam.onnx", tmp_path / "repo"
    code, text = cli("import", "reference", folder, "--out", ckpt)
    assert code == 0, text
    code, text = cli("export", ckpt, "--out", onnx_path)
    assert code == 0, text  # exit 2 would mean the verification against PyTorch failed
    proto = onnx.load(str(onnx_path))
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities", "cam", *(f"attention_{l}" for l in
                                                                                         range(1, 6))]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["aucues"])
    assert meta["model_config"]["backbone"] == "tscam" and meta["model_config"]["method"] == "tscam"
    code, text = cli("repository", "build", "--out", repo, "--onnx", onnx_path, "--instances", "1", "--max-batch", "4")
    assert code == 0, text

    try:
        find_tritonserver()
    except AucuesError as e:
        skip_unless_ci(f"tritonserver binary absent: {e}")
    data = astronaut_path.read_bytes()
    server = TritonServer(repo)
    server.start(timeout=180)
    pipeline = Pipeline(onnx_path)
    try:
        with AucuesClient(server.http_url, "http") as client:
            client.check_ready()
            pred = client.predict(data, maps=True)
        res, maps = pred.result, pred.maps
        spec = pipeline.spec
        assert res["num_faces"] == 1 and res["label"] in spec.class_names
        assert abs(sum(res["probabilities"].values()) - 1) < 1e-5
        assert res["label"] == max(res["probabilities"], key=res["probabilities"].get)
        face = maps["aligned_face"]
        assert face.shape == (SIZE, SIZE, 3) and face.dtype == np.uint8
        for m in (maps["cam"], maps["attention"]):  # min-max normalised, upsampled to the face
            assert m.shape == (SIZE, SIZE) and np.isfinite(m).all() and 0 <= m.min() and 0.9 < m.max() <= 1
        # the same aligned face through in-process ONNX Runtime and the same postprocess
        raw = pipeline.classify(spec.preprocess.normalize(face))
        assert raw["cam"].shape == (1, 7, SIZE // 16, SIZE // 16)
        probs = np.array([res["probabilities"][n] for n in spec.class_names])
        np.testing.assert_allclose(probs, raw["probabilities"][0], atol=ATOL)
        ex = postprocess(spec, raw["probabilities"][0], raw["cam"][0], raw["attention_5"][0],
                         np.asarray(res["landmarks"], np.float32))
        assert res["label"] == ex.label
        np.testing.assert_allclose(maps["cam"], ex.cam, atol=ATOL)
        np.testing.assert_allclose(maps["attention"], ex.attention, atol=ATOL)
        if ex.label == "Neutral":
            assert res["au_evidence"] == []
        else:
            assert [r["au"] for r in res["au_evidence"]] == [r["au"] for r in ex.au_evidence]
            assert res["au_evidence"] and all(0 <= r["share"] <= 1 for r in res["au_evidence"])
    finally:
        pipeline.close()
        assert server.stop() == 0, server.last_log
