"""Restart the Python-backend stub of a model whose stub process died (issue 13).

Measured on the nvidia-pytriton 0.7.0 tritonserver (Triton 2.51, docs/reliability.md): after `kill -9`
of one `preprocess` stub, Triton never restarts it; every request routed to that instance fails with
"Stub process 'preprocess_0_1' is not healthy" (half of all requests with 2 instances), while
server-ready, model-ready and the repository index keep saying READY. The dead stub stays a zombie
child of tritonserver.

So the launcher watches tritonserver's stub children (each stub's argv[1] is
`<repository>/<model>/<version>/model.py`) and, when one dies, reloads that model through the
model-repository API (the server runs in explicit model-control mode; the API is restricted behind
the launcher's per-start key): unload, then load. Between the two the model and the ensemble built
on it report not ready, so health checks and load balancers see the outage instead of a READY
server that fails half its requests."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
POLL_S = 0.25          # how often the stub children are listed (cheap: /proc reads)
RELOAD_TIMEOUT_S = 120


@dataclass
class StubEvent:
    model: str
    pid: int
    died_at: float             # time.monotonic() when the death was noticed
    ready_after_s: float | None = None   # noticed -> model ready again (None: reload failed)
    error: str = ""


def stub_models(server_pid: int, repository: Path | None) -> dict[int, tuple[str, bool]]:
    """pid -> (model name, alive) for every Python-backend stub child of tritonserver; a zombie
    (exited, not yet reaped by Triton) counts as dead. Without the repository (a server started
    elsewhere) the model is the folder two levels above the stub's model.py."""
    import psutil

    try:
        children = psutil.Process(server_pid).children()
    except psutil.Error:
        return {}
    out = {}
    for p in children:
        try:
            cmd = p.cmdline()
            alive = p.status() != psutil.STATUS_ZOMBIE
        except psutil.ZombieProcess:
            cmd, alive = None, False
        except psutil.Error:
            continue
        if cmd is None:
            out[p.pid] = ("", False)  # a zombie's argv is gone; its model is known from earlier polls
            continue
        if not cmd or not cmd[0].endswith(STUB_NAME) or len(cmd) < 2:
            continue
        path = Path(cmd[1])
        try:
            model = path.relative_to(repository).parts[0] if repository else path.parent.parent.name
        except ValueError:
            model = path.parent.parent.name
        out[p.pid] = (model, alive)
    return out


class StubWatchdog(threading.Thread):
    """Polls the stubs of one TritonServer; reloads a model whose stub died. `events` records each
    death and how long the model took to be ready again."""

    def __init__(self, server, interval: float = POLL_S, log=None):
        super().__init__(name="aucues-stub-watchdog", daemon=True)
        self.server = server
        self.interval = interval
        self.log = log or (lambda msg: None)
        self.events: list[StubEvent] = []
        self._halt = threading.Event()
        self._known: dict[int, str] = {}

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            # a reload in flight ends when the server stops (its HTTP call fails); the thread is a daemon
            self.join(5)

    # -- the model-repository API, with the launcher's admin key ---------------------------------
    def _post(self, path: str, timeout: float = RELOAD_TIMEOUT_S) -> bytes:
        from aucues.serve.tritonserver import ADMIN_HEADER

        req = urllib.request.Request(f"http://{self.server.http_url}{path}", data=b"{}", method="POST",
                                     headers={ADMIN_HEADER: self.server.admin_key,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            try:
                body = json.loads(body).get("error", body)
            except ValueError:
                pass
            raise RuntimeError(f"{path}: HTTP {e.code}: {body}") from None

    def _model_ready(self, model: str) -> bool:
        try:
            url = f"http://{self.server.http_url}/v2/models/{model}/ready"
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def ready_models(self) -> set[str]:
        """Names of the models the repository index says are READY (empty if the index cannot be read)."""
        try:
            index = json.loads(self._post("/v2/repository/index", timeout=10) or b"[]")
        except (RuntimeError, OSError, ValueError):
            return set()
        return {m["name"] for m in index if isinstance(m, dict) and m.get("state") == "READY"}

    def reload(self, model: str) -> None:
        """Unload then load `model`: Triton stops its remaining stubs and starts fresh ones; the
        ensemble that uses it is not ready in between."""
        self._post(f"/v2/repository/models/{model}/unload")
        self._post(f"/v2/repository/models/{model}/load")

    # -- the loop --------------------------------------------------------------------------------
    def _server_alive(self) -> bool:
        proc = self.server.proc
        return proc is not None and proc.poll() is None

    def poll_once(self) -> dict[str, int]:
        """model -> pid of a stub that died since the last poll (and remember the living stubs)."""
        stubs = stub_models(self.server.pid, self.server.repository)
        dead = {}
        for pid, (model, alive) in stubs.items():
            if alive:
                self._known[pid] = model or self._known.get(pid, "")
            elif pid in self._known:
                dead[self._known.pop(pid)] = pid
        for pid in [p for p in self._known if p not in stubs]:  # reaped before we saw the zombie
            dead[self._known.pop(pid)] = pid
        return {m: pid for m, pid in dead.items() if m}

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            if not self._server_alive():
                return
            for model, pid in sorted(self.poll_once().items()):
                if self._halt.is_set():
                    return
                self._restart(model, pid)

    def _restart(self, model: str, pid: int) -> None:
        ev = StubEvent(model=model, pid=pid, died_at=time.monotonic())
        self.events.append(ev)
        self.log(f"the stub of model '{model}' (pid {pid}) died; reloading it (not ready until it is back)")
        # Triton unloads the ensembles built on `model` with it and loads them back after it, so
        # "back" means every model that was READY before the reload is READY again, not just `model`
        # (measured: the ensemble turned ready a moment after its composing model).
        expected = self.ready_models() | {model}
        try:
            self.reload(model)
            deadline = time.monotonic() + RELOAD_TIMEOUT_S

            def back() -> bool:
                return all(self._model_ready(m) for m in sorted(expected))

            while not back() and time.monotonic() < deadline and not self._halt.is_set():
                time.sleep(0.1)
            if back():
                ev.ready_after_s = time.monotonic() - ev.died_at
                self.log(f"model '{model}' reloaded; ready again after {ev.ready_after_s:.1f} s")
            else:
                ev.error = "not ready after the reload"
        except (RuntimeError, OSError) as e:
            ev.error = str(e)
            self.log(f"reloading model '{model}' failed: {e}")
        # the stubs stopped by the reload are not deaths: start over from the new set
        self._known = {pid: m for pid, (m, alive) in
                       stub_models(self.server.pid, self.server.repository).items() if alive}
