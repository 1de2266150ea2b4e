"""NVIDIA's perf_analyzer (the load generator inside the tritonclient[all] wheel, `<prefix>/bin/
perf_analyzer`) as the cross-check of `aucues bench serve`: same server, same ensemble, same photo.

It is a C++ binary that needs two shared libraries the wheel does not bring:
    libb64.so.0d     Debian's libb64-0d; `make setup` unpacks it into .venv/lib/aucues-native
                     (`python -m aucues.serve.perf_analyzer setup`: apt-get download + dpkg -x, no
                     system change) unless the system has it
    libcudart.so.12  the nvidia-cuda-runtime-cu12 wheel (a runtime dependency, 3.5 MB); it is only
                     linked, a CPU-only machine never calls into it
Both directories go on the binary's LD_LIBRARY_PATH, nothing else is touched."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aucues.errors import AucuesError

NATIVE_DIR = "aucues-native"     # under <venv>/lib: vendored shared libraries
LIBB64 = "libb64.so.0d"
LIBCUDART = "libcudart.so.12"
HOW_TO = "run `make setup` (or: apt-get install libb64-0d; pip install nvidia-cuda-runtime-cu12)"


@dataclass
class PerfAnalyzer:
    binary: Path
    lib_dirs: list[str]

    def env(self) -> dict:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*self.lib_dirs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        return env


def _prefixes() -> list[Path]:
    """sys.prefix and the install prefix of tritonclient (a venv may reuse another's site-packages)."""
    out = [Path(sys.prefix)]
    try:
        import tritonclient

        out.append(Path(tritonclient.__file__).resolve().parents[4])  # <prefix>/lib/pythonX.Y/site-packages/...
    except (ImportError, IndexError):
        pass
    return list(dict.fromkeys(out))


def _system_has(lib: str) -> bool:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.strip().startswith(lib + " ") for line in out.splitlines())


def _cudart_dir() -> str | None:
    try:
        import nvidia.cuda_runtime as cr
    except ImportError:
        return None
    for p in cr.__path__:
        if (Path(p) / "lib" / LIBCUDART).exists():
            return str(Path(p) / "lib")
    return None


def find_perf_analyzer() -> PerfAnalyzer:
    """The binary and the library folders it needs; one-line AucuesError saying how to get what is missing."""
    binary = next((p / "bin" / "perf_analyzer" for p in _prefixes() if (p / "bin" / "perf_analyzer").is_file()), None)
    if binary is None and shutil.which("perf_analyzer"):
        binary = Path(shutil.which("perf_analyzer"))
    if binary is None:
        raise AucuesError("perf_analyzer not found (it comes with the tritonclient[all] wheel: "
                          "pip install 'tritonclient[all]')")
    dirs, missing = [], []
    native = [p / "lib" / NATIVE_DIR for p in _prefixes()]
    b64 = next((d for d in native if (d / LIBB64).exists()), None)
    if b64 is not None:
        dirs.append(str(b64))
    elif not _system_has(LIBB64):
        missing.append(f"{LIBB64} (Debian libb64-0d)")
    cudart = _cudart_dir()
    if cudart is not None:
        dirs.append(cudart)
    elif not _system_has(LIBCUDART):
        missing.append(f"{LIBCUDART} (nvidia-cuda-runtime-cu12 wheel)")
    if missing:
        raise AucuesError(f"perf_analyzer cannot run: missing {' and '.join(missing)}; {HOW_TO}")
    return PerfAnalyzer(binary, dirs)


def setup_native(prefix: str | Path | None = None) -> str:
    """Make libb64.so.0d available to perf_analyzer: nothing when the system has it, else unpack the
    Debian package into <prefix>/lib/aucues-native (apt-get download needs no root; when the package
    lists are empty, root runs apt-get update first). Returns what happened, one line."""
    dest = Path(prefix or sys.prefix) / "lib" / NATIVE_DIR
    if (dest / LIBB64).exists():
        return f"{LIBB64}: already in {dest}"
    if _system_has(LIBB64):
        return f"{LIBB64}: provided by the system"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise AucuesError(f"cannot fetch {LIBB64}: no apt-get/dpkg here; install libb64 1.2 by hand")
    with tempfile.TemporaryDirectory(prefix="aucues-libb64-") as tmp:
        def download() -> subprocess.CompletedProcess:
            return subprocess.run(["apt-get", "download", "-q", "libb64-0d"], cwd=tmp, capture_output=True,
                                  text=True, timeout=300)

        r = download()
        if r.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
            r = download()
        debs = list(Path(tmp).glob("libb64-0d_*.deb"))
        if r.returncode != 0 or not debs:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise AucuesError(f"apt-get download libb64-0d failed: {msg[-1] if msg else r.returncode}")
        root = Path(tmp) / "root"
        subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], check=True, timeout=60)
        found = next(root.rglob(LIBB64), None)
        if found is None:
            raise AucuesError(f"{debs[0].name} holds no {LIBB64}")
        dest.mkdir(parents=True, exist_ok=True)
        part = dest / (LIBB64 + ".part")
        shutil.copyfile(found.resolve(), part)
        os.replace(part, dest / LIBB64)
    return f"{LIBB64}: unpacked into {dest}"


# ---------------------------------------------------------------------------------------------------
# Running it

# perf_analyzer's CSV columns (microseconds) -> our names (milliseconds)
CSV_COLUMNS = {"Client Send": "client_send_ms", "Network+Server Send/Recv": "network_ms",
               "Server Queue": "server_queue_ms", "Server Compute Input": "server_compute_input_ms",
               "Server Compute Infer": "server_compute_infer_ms", "Server Compute Output": "server_compute_output_ms",
               "Client Recv": "client_recv_ms", "p50 latency": "p50_ms", "p90 latency": "p90_ms",
               "p99 latency": "p99_ms", "Avg latency": "mean_ms"}


def parse_csv(text: str) -> list[dict]:
    """Rows of perf_analyzer's -f CSV: one per concurrency; latencies in ms."""
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        if not r.get("Concurrency"):
            continue
        row = {"concurrency": int(float(r["Concurrency"])), "throughput_per_s": round(float(r["Inferences/Second"]), 3)}
        for src, dst in CSV_COLUMNS.items():
            if r.get(src) not in (None, ""):
                row[dst] = round(float(r[src]) / 1000.0, 3)
        rows.append(row)
    return rows


def run(url: str, protocol: str, input_json: str | Path, concurrency: tuple[int, ...], window_s: float,
        model: str = "aucues", timeout_s: float | None = None) -> dict:
    """perf_analyzer at each concurrency (time windows of window_s; at most 3 windows per point, the
    last ones reported even when they differ by more than its default 10%: a shared machine rarely
    holds still that long). Returns {"rows": [...], "command": [...]}."""
    pa = find_perf_analyzer()
    # a window must hold several requests: at ~0.3 s per request on a loaded 2-core machine, shorter
    # ones come back empty and perf_analyzer exits with an error
    window_ms = max(1000, int(window_s * 1000))
    with tempfile.TemporaryDirectory(prefix="aucues-perf-analyzer-") as tmp:
        csv_path = Path(tmp) / "pa.csv"
        rows = []
        commands = []
        for c in concurrency:
            cmd = [str(pa.binary), "-m", model, "-u", url, "-i", protocol, "--input-data", str(input_json),
                   "--concurrency-range", f"{c}:{c}", "--measurement-mode", "time_windows",
                   "--measurement-interval", str(window_ms), "--max-trials", "3", "--stability-percentage", "999",
                   "-f", str(csv_path)]
            commands.append(cmd)
            limit = timeout_s or (window_s * 6 + 60)
            try:
                r = subprocess.run(cmd, env=pa.env(), capture_output=True, text=True, timeout=limit)
            except subprocess.TimeoutExpired:
                raise AucuesError(f"perf_analyzer did not finish within {limit:.0f} s at concurrency {c}") from None
            if r.returncode != 0 or not csv_path.is_file():
                lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
                why = [ln for ln in lines if any(w in ln.lower() for w in ("fail", "error", "no valid", "unable"))]
                raise AucuesError(f"perf_analyzer failed at concurrency {c} (exit {r.returncode}): "
                                  f"{(why or lines or ['no output'])[-1]}")
            rows += parse_csv(csv_path.read_text())
            csv_path.unlink()
    return {"rows": rows, "command": " ".join(Path(commands[0][0]).name if i == 0 else a
                                               for i, a in enumerate(commands[0]))}


def compare(aucues_rows: list[dict], pa_rows: list[dict], variant: str) -> list[dict]:
    """Side by side per concurrency: aucues's own closed loop vs perf_analyzer on the same server."""
    mine = {r["concurrency"]: r for r in aucues_rows if r["variant"] == variant}
    out = []
    for p in pa_rows:
        a = mine.get(p["concurrency"])
        if a is None:
            continue
        out.append({"variant": variant, "concurrency": p["concurrency"],
                    "aucues_per_s": a["throughput_per_s"], "perf_analyzer_per_s": p["throughput_per_s"],
                    "aucues_over_pa": round(a["throughput_per_s"] / p["throughput_per_s"], 3)
                    if p["throughput_per_s"] else None,
                    "aucues_p50_ms": a.get("p50_ms"), "pa_p50_ms": p.get("p50_ms"),
                    "pa_server_queue_ms": p.get("server_queue_ms"),
                    "pa_server_compute_ms": round(sum(p.get(k, 0.0) for k in ("server_compute_input_ms",
                                                                              "server_compute_infer_ms",
                                                                              "server_compute_output_ms")), 3)})
    return out


def write_input(image: str | Path, path: str | Path) -> Path:
    """perf_analyzer --input-data file: the photo's encoded bytes, base64, as the ensemble's UINT8
    `image_bytes` input with its shape (the byte count; the batch axis comes from -b)."""
    import base64

    from aucues.io import atomic_write_json

    data = Path(image).read_bytes()
    payload = {"data": [{"image_bytes": {"content": {"b64": base64.b64encode(data).decode("ascii")},
                                         "shape": [len(data)]}}]}
    atomic_write_json(path, payload)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """`python -m aucues.serve.perf_analyzer setup|check|run ARGS` (make setup runs `setup`)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["setup"]:
            print(setup_native())
            return 0
        if args[:1] == ["run"]:  # the binary with its libraries on LD_LIBRARY_PATH, arguments passed on
            pa = find_perf_analyzer()
            return subprocess.run([str(pa.binary), *args[1:]], env=pa.env()).returncode
        if args[:1] == ["check"]:
            pa = find_perf_analyzer()
            r = subprocess.run([str(pa.binary), "--version"], env=pa.env(), capture_output=True, text=True, timeout=30)
            print(f"{pa.binary}: {(r.stdout or r.stderr).strip().splitlines()[-1] if (r.stdout or r.stderr).strip() else r.returncode}")
            return 0 if r.returncode == 0 else 1
    except AucuesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("usage: python -m aucues.serve.perf_analyzer setup|check|run PERF_ANALYZER_ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
