"""Measure the landmark cache at dataset scale (docs/landmark_cache.md records the numbers).

    .venv/bin/python scripts/bench_landmark_cache.py [--entries 300000] [--dir /tmp]
                                                     [--out runs/bench/landmark_cache.json]

Writes a synthetic cache of --entries images (aucues.landmark_cache_bench.synthetic_faces) one committed
set() at a time, as `aucues landmarks --batch` does, then reports its size, the time to open it and
to decode every entry (a training run's load), single-key lookups, the quantisation error, and the
old JSON format's size for the same entries.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aucues.landmark_cache_bench import run_landmark_cache_bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=300_000)
    ap.add_argument("--dir", type=Path, default=None, help="where the cache file is written (a temp folder)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/landmark_cache.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        r = run_landmark_cache_bench(Path(d) / "bench.sqlite", n=args.entries)
    r["machine"] = f"{platform.machine()}, {platform.python_version()}, {sys.platform}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1) + "\n")
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
