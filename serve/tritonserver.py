"""Run a real tritonserver without Docker: the binary inside the nvidia-pytriton wheel.

Set-up (ENVIRONMENT.md, measured): a private backends/python folder with the wheel's Python backend
and the stub for the running Python copied in; LD_LIBRARY_PATH = Python's LIBDIR (else the stub may
load another libpython) + the wheel's nvidia_pytriton.libs (the server's bundled libraries); the
venv's bin first on PATH (the stub finds the venv's numpy and aucues through it); loopback addresses;
free ports; a unique shared-memory prefix so several servers can run side by side."""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from aucues.errors import AucuesError

LOOPBACK = "127.0.0.1"
EXIT_TIMEOUT_S = 10
# CPU-only machines: CUDA/NVML complaints in the log are expected (ENVIRONMENT.md), not the cause.
HARMLESS = ("CudaDriverHelper", "NVML", "nvml", "CUDA driver", "cuda driver")
# Every API a client needs stays open: inference, health, metadata, model-config (the client reads the
# class names from it) and statistics (read-only; `aucues bench` reads it). These are restricted behind
# a per-start random header (issue 13): shared-memory registration lets any client map server memory,
# model-repository/model-control loads and unloads models, trace and logging change server state.
# Opt in with TritonServer(admin_apis=True) / `aucues serve --admin-apis`. (Triton 2.51 spells the
# options --http-restricted-api and --grpc-restricted-protocol.)
RESTRICTED_APIS = ("shared-memory", "model-repository", "trace", "logging")
ADMIN_HEADER = "aucues-admin-key"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to tritonserver when the process that started it dies,
    kill -9 included (Linux prctl PR_SET_PDEATHSIG); Triton then exits and its stubs with it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: best effort, stop() still runs on normal exits
        pass


SHM_DIR = Path("/dev/shm")
WORKDIR_PREFIX = "aucues-triton-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(tmp: Path | None = None, shm: Path = SHM_DIR) -> list[Path]:
    """Remove the work folders and Python-backend shared-memory regions left by launchers that died
    without stopping their server (kill -9: PDEATHSIG kills tritonserver, but nobody cleans up).
    Both names carry the launcher's pid (aucues-triton-<pid>-*, aucues<pid>x*); only those of dead
    pids are removed."""
    import re

    tmp = Path(tmp or tempfile.gettempdir())
    removed = []
    for folder, pattern in ((tmp, re.compile(rf"{WORKDIR_PREFIX}(\d+)-")), (shm, re.compile(r"aucues(\d+)x"))):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for e in entries:
            m = pattern.match(e.name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            try:
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e)
                else:
                    e.unlink()
                removed.append(e)
            except OSError:  # another user's, or already gone
                pass
    return removed


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def pytriton_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_tritonserver(path: str | Path | None = None) -> Path:
    """The tritonserver binary: `path`, else $AUCUES_TRITONSERVER, else the nvidia-pytriton wheel's."""
    cand = path or os.environ.get("AUCUES_TRITONSERVER")
    if cand:
        p = Path(cand)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise AucuesError(f"{p}: not an executable tritonserver binary")
        return p
    root = pytriton_dir()
    p = root / "tritonserver" / "bin" / "tritonserver" if root else None
    if p is None or not p.is_file():
        raise AucuesError("tritonserver not found: install nvidia-pytriton==0.7.0 (make setup) or pass --tritonserver PATH")
    return p


def _is_wheel_binary(binary: Path) -> bool:
    root = pytriton_dir()
    return root is not None and binary.resolve() == (root / "tritonserver" / "bin" / "tritonserver").resolve()


def prepare_backends(workdir: Path) -> Path:
    """workdir/backends/python with the wheel's Python backend and the stub for this Python."""
    root = pytriton_dir()
    if root is None:
        raise AucuesError("nvidia-pytriton is not installed: no Python backend to give tritonserver")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise AucuesError(f"nvidia-pytriton ships no Python backend stub for Python {version}")
    dest = workdir / "backends"
    shutil.copytree(root / "tritonserver" / "backends", dest, ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    shutil.copy2(stub, dest / "python" / "triton_python_backend_stub")
    return dest


def server_env(base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    libs = [sysconfig.get_config_var("LIBDIR") or ""]
    root = pytriton_dir()
    if root is not None:
        libs.append(str(root.parent / "nvidia_pytriton.libs"))
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
    # sys.executable's folder without resolving symlinks: the venv's bin, not the base interpreter's.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class TritonServer:
    """One tritonserver process serving `repository`. Use as a context manager or start()/stop()."""

    def __init__(self, repository: str | Path, *, http_port: int | None = None, grpc_port: int | None = None,
                 metrics_port: int | None = None, binary: str | Path | None = None, address: str = LOOPBACK,
                 log_verbose: int = 0, extra_args: list[str] | None = None, admin_apis: bool = False,
                 watchdog: bool = True, on_event=None):
        self.repository = Path(repository).resolve()
        if not (self.repository / "aucues" / "config.pbtxt").exists() and not any(
                self.repository.glob("*/config.pbtxt")):
            raise AucuesError(f"{self.repository}: not a model repository (no */config.pbtxt)")
        self.binary = find_tritonserver(binary)
        self.address = address
        ports = [p or free_port() for p in (http_port, grpc_port, metrics_port)]
        if len(set(ports)) != 3:
            raise AucuesError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
        self.http_port, self.grpc_port, self.metrics_port = ports
        self.log_verbose = log_verbose
        self.extra_args = list(extra_args or [])
        self.admin_apis = admin_apis
        # restart a model whose Python stub died (serve/watchdog.py); needs explicit model control
        self.use_watchdog = watchdog
        self.on_event = on_event
        self.watchdog = None
        # header value a client must send to use a restricted API; random per start, never logged
        self.admin_key = secrets.token_hex(16)
        self._explicit_ports = [p for p in (http_port, grpc_port, metrics_port) if p]
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self.start_seconds: float | None = None
        self.last_log = ""

    # -- endpoints -------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return LOOPBACK if self.address in ("0.0.0.0", "") else self.address

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # -- life cycle ------------------------------------------------------------------------------
    def command(self) -> list[str]:
        assert self.workdir is not None
        shm_prefix = f"aucues{os.getpid()}x{os.urandom(3).hex()}"
        cmd = [str(self.binary), f"--model-repository={self.repository}",
               f"--http-address={self.address}", f"--http-port={self.http_port}",
               f"--grpc-address={self.address}", f"--grpc-port={self.grpc_port}",
               f"--metrics-address={self.address}", f"--metrics-port={self.metrics_port}",
               "--allow-gpu-metrics=false", "--strict-readiness=true", "--exit-on-error=true",
               # an idle keep-alive client connection otherwise holds shutdown for 30 s
               f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
               f"--log-verbose={self.log_verbose}",
               f"--backend-config=python,shm-region-prefix-name={shm_prefix}"]
        if self.use_watchdog:
            # explicit model control: the watchdog reloads one model through the repository API;
            # every model of the repository is still loaded at start
            cmd += ["--model-control-mode=explicit", "--load-model=*"]
        if not self.admin_apis:
            apis = ",".join(RESTRICTED_APIS)
            cmd += [f"--http-restricted-api={apis}:{ADMIN_HEADER}={self.admin_key}",
                    f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={self.admin_key}"]
        if _is_wheel_binary(self.binary):
            cmd += [f"--backend-directory={self.workdir / 'backends'}",
                    f"--cache-directory={self.workdir / 'caches'}"]
        return cmd + self.extra_args

    def start(self, timeout: float = 120.0) -> "TritonServer":
        if self.proc is not None:
            raise AucuesError("server already started")
        bind = "0.0.0.0" if self.address in ("0.0.0.0", "") else self.address
        for port in (self.http_port, self.grpc_port, self.metrics_port):
            if port_in_use(bind, port):
                raise AucuesError(f"port {port} on {bind} is already in use (another server?); "
                                  f"choose other ports or stop that process")
        sweep_stale()  # leftovers of launchers killed with -9 (their pid is in the names)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        if _is_wheel_binary(self.binary):
            prepare_backends(self.workdir)
            (self.workdir / "caches").mkdir()
        self.log_path = self.workdir / "tritonserver.log"
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C in the terminal reaches us only, and we forward it (stop()).
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=server_env(), start_new_session=True,
                                         preexec_fn=_die_with_parent)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        if self.use_watchdog:
            from aucues.serve.watchdog import StubWatchdog

            self.watchdog = StubWatchdog(self, log=self.on_event)
            self.watchdog.poll_once()  # learn the stubs now, so a death right after start counts
            self.watchdog.start()
        return self

    def log_tail(self, lines: int = 30) -> str:
        """The log's error lines (Triton's `E<date>` lines, model load failures) and its last lines,
        without the banner tables that would otherwise fill the tail."""
        if self.log_path is None or not self.log_path.exists():
            return self.last_log
        text = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                if ln.strip() and not ln.startswith(("+", "|"))]
        errors = [ln for ln in text if ((ln[:1] == "E" and ln[1:2].isdigit()) or "failed to load" in ln)
                  and not any(h in ln for h in HARMLESS)]
        tail = text[-lines:]
        return "\n".join([ln for ln in errors if ln not in tail][-lines:] + tail)

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AucuesError(f"tritonserver exited with code {self.proc.returncode} before it was ready; "
                                  f"log tail:\n{self.log_tail(15)}")
            # ready only while *our* child is alive: another server on the port does not count
            if self.is_ready() and self.proc is not None and self.proc.poll() is None:
                return
            time.sleep(0.2)
        raise AucuesError(f"tritonserver not ready after {timeout:.0f} s; log tail:\n{self.log_tail(15)}")

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait (Triton unloads models and stops its stubs), SIGKILL if it hangs."""
        code = None
        if self.watchdog is not None:  # before SIGTERM: stubs stopping at shutdown are no deaths
            self.watchdog.stop()
            self.watchdog = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            code = self.proc.returncode
            self.proc = None
        self.last_log = self.log_tail(60)  # kept for diagnostics once the work folder is gone
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return code

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def __enter__(self) -> "TritonServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
