"""Predict over HTTP or gRPC with tritonclient against the `aucues` ensemble."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from aucues.errors import AucuesError
from aucues.serve.spec import ModelSpec

DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
PROTOCOLS = tuple(DEFAULT_PORTS)
JSON_OUTPUTS = ("label", "probabilities", "topk", "au_evidence", "interpretability_score", "landmarks",
                "face_box", "num_faces", "status")
MAP_OUTPUTS = ("cam", "attention", "aligned_face")


class PredictError(AucuesError):
    """The server answered this one request with an error (e.g. no face found)."""


class ServerUnreachable(AucuesError):
    """No ready server at the URL."""


@dataclass
class Prediction:
    result: dict                                   # JSON-able: what `aucues predict --json` prints
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # cam, attention, aligned_face (if asked)


def default_url(protocol: str) -> str:
    return f"localhost:{DEFAULT_PORTS[protocol]}"


def _message(e: Exception) -> str:
    msg = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
    msg = (msg or e.__class__.__name__).strip()
    # Triton prefixes ensemble errors with "in ensemble 'aucues', "; the cause is what users need.
    prefix = "in ensemble 'aucues', "
    return msg.split(prefix, 1)[1] if prefix in msg else msg


class AucuesClient:
    def __init__(self, url: str | None = None, protocol: str = "http", model: str = "aucues",
                 timeout: float = 60.0):
        if protocol not in PROTOCOLS:
            raise AucuesError(f"unknown protocol '{protocol}'; choose http or grpc")
        self.protocol, self.model, self.timeout = protocol, model, float(timeout)
        self.url = url or default_url(protocol)
        for scheme in ("http://", "grpc://"):
            if self.url.startswith(scheme):
                self.url = self.url[len(scheme):]
        try:
            if protocol == "http":
                import tritonclient.http as tc

                self._client = tc.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                        network_timeout=self.timeout)
            else:
                import tritonclient.grpc as tc

                self._client = tc.InferenceServerClient(self.url)
        except Exception as e:  # noqa: BLE001 - bad URL forms raise various errors
            raise ServerUnreachable(f"cannot connect to {self.url} ({protocol}): {_message(e)}") from None
        self._tc = tc
        self._spec: ModelSpec | None = None

    # -- server state ----------------------------------------------------------------------------
    def check_ready(self) -> None:
        try:
            ready = self._client.is_server_ready() and self._client.is_model_ready(self.model)
        except Exception as e:  # noqa: BLE001 - connection refused, DNS, timeouts, ...
            raise ServerUnreachable(f"server not reachable at {self.url} ({self.protocol}): {_message(e)}") from None
        if not ready:
            raise ServerUnreachable(f"server at {self.url} is up but model '{self.model}' is not ready")

    @property
    def spec(self) -> ModelSpec:
        """Class names, image size and codebook of the served model (the ensemble config's parameter)."""
        if self._spec is None:
            try:
                if self.protocol == "http":
                    cfg = self._client.get_model_config(self.model)
                else:
                    cfg = self._client.get_model_config(self.model, as_json=True)["config"]
                text = cfg["parameters"]["aucues"]["string_value"]
            except KeyError:
                raise AucuesError(f"model '{self.model}' has no aucues parameter: not an aucues repository") from None
            except Exception as e:  # noqa: BLE001
                raise ServerUnreachable(f"cannot read the model config from {self.url}: {_message(e)}") from None
            self._spec = ModelSpec.from_json(text)
        return self._spec

    # -- inference -------------------------------------------------------------------------------
    def infer_raw(self, data: bytes | list[bytes], outputs: tuple[str, ...] = JSON_OUTPUTS):
        """One request; `data` is one image or a list of images (rows of one request, zero-padded to
        the longest: every supported format ignores bytes after its end)."""
        rows = [bytes(data)] if isinstance(data, (bytes, bytearray, memoryview)) else [bytes(d) for d in data]
        if not rows:
            raise AucuesError("no images to send")
        width = max(len(r) for r in rows)
        arr = np.zeros((len(rows), width), np.uint8)
        for i, r in enumerate(rows):
            arr[i, :len(r)] = np.frombuffer(r, np.uint8)
        inp = self._tc.InferInput("image_bytes", list(arr.shape), "UINT8")
        inp.set_data_from_numpy(arr)
        req = [self._tc.InferRequestedOutput(n) for n in outputs]
        try:
            if self.protocol == "grpc":  # the gRPC client has no connection-level timeout: per call
                res = self._client.infer(self.model, [inp], outputs=req, client_timeout=self.timeout)
            else:
                res = self._client.infer(self.model, [inp], outputs=req)
        except Exception as e:  # noqa: BLE001 - InferenceServerException, connection errors
            msg = _message(e)
            low = msg.lower()
            if "deadline exceeded" in low or "timed out" in low or "timeout" in low:
                raise PredictError(f"no answer within the {self.timeout:g} s timeout ({msg})") from None
            if any(s in low for s in ("connection refused", "failed to connect", "unavailable")):
                raise ServerUnreachable(f"server not reachable at {self.url} ({self.protocol}): {msg}") from None
            raise PredictError(msg) from None
        return {n: res.as_numpy(n) for n in outputs}

    def _row(self, out: dict, i: int) -> Prediction | PredictError:
        """Row i of a response: its Prediction, or its own error (status other than "ok")."""
        status = out["status"].reshape(len(out["status"]), -1)[i, 0].decode(errors="replace")
        if status != "ok":
            return PredictError(status)
        from aucues.serve.result import make_result

        result = make_result(
            self.spec.class_names, out["label"].reshape(-1)[i].decode(), out["probabilities"][i],
            [t.decode() for t in out["topk"][i].reshape(-1)],
            json.loads(out["au_evidence"].reshape(-1)[i].decode()),
            out["interpretability_score"].reshape(-1)[i], out["face_box"][i],
            out["num_faces"].reshape(-1)[i], out["landmarks"][i])
        return Prediction(result, {n: out[n][i] for n in MAP_OUTPUTS if n in out})

    def _map_outputs(self) -> tuple[str, ...]:
        """The map outputs the served model has: no `cam` for a model without one (APViT)."""
        return MAP_OUTPUTS if self.spec.has_cam else tuple(n for n in MAP_OUTPUTS if n != "cam")

    def predict(self, data: bytes, maps: bool = False) -> Prediction:
        out = self.infer_raw(data, JSON_OUTPUTS + (self._map_outputs() if maps else ()))
        row = self._row(out, 0)
        if isinstance(row, PredictError):
            raise row
        return row

    def predict_many(self, images: list[bytes], maps: bool = False) -> list[Prediction | PredictError]:
        """Several images in one request: a Prediction for every good row and, for each bad row, its
        own PredictError (the server's per-row status). A one-image request whose image is bad fails
        as a whole on the server; that error is returned as the row's."""
        try:
            out = self.infer_raw(images, JSON_OUTPUTS + (self._map_outputs() if maps else ()))
        except PredictError as e:
            if len(images) == 1:
                return [e]
            raise
        return [self._row(out, i) for i in range(len(images))]

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "AucuesClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
