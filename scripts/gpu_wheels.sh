#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh on a GPU machine that cannot reach a package registry and already has
# PyTorch, ONNX, ONNX Runtime and the rest in its image (docs/gpu_check.md): only what that image
# lacks, for its Python (default 3.12), into DIR (default .whl, ignored by git). Then, on that machine:
#   bash scripts/gpu_check.sh --wheels .whl --out OUT.md
#
#   scripts/gpu_wheels.sh [--python-version 3.12] [--dest DIR] [NAME==VERSION ...]
# Default names: onnxslim at the version installed here (pure Python, 0.25 MB). Also aucues itself, as a
# wheel built here (pure Python, no build on that machine: its setuptools may be older than ours).
# TensorRT (~1-2 GB) and onnxruntime-gpu (~250 MB) are far too large for a machine that takes 64 MiB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYV=3.12
DEST="$ROOT/.whl"
NAMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV=$2; shift 2 ;;
    --dest) DEST=$2; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 1 ;;
    *) NAMES+=("$1"); shift ;;
  esac
done
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3
if [ ${#NAMES[@]} -eq 0 ]; then
  NAMES=("onnxslim==$("$PY" -c 'import importlib.metadata as m; print(m.version("onnxslim"))')")
fi
mkdir -p "$DEST"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  "${platforms[@]}" -d "$DEST" "${NAMES[@]}"
rm -f "$DEST"/aucues-*.whl
"$PY" -m pip wheel -q --no-deps -w "$DEST" "$ROOT"
du -sh "$DEST"
ls "$DEST"
