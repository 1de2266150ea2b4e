#!/usr/bin/env bash
# The GPU check (issue 17): one command on a CUDA machine; writes docs/gpu.md.
#
#   scripts/gpu_check.sh                   # on a CUDA machine, from the repository root or anywhere
#   scripts/gpu_check.sh --dry-run --out /tmp/gpu.md   # no GPU: a tiny CPU model, exercises every step
#
# Steps, each under its own time limit and all under a global one (default 460 s, < 8 min), each
# guarded so that a failure is written down and the next step still runs:
#   card (nvidia-smi), aucues doctor, ONNX export of ResNet50 large maps 224 (random weights: speed
#   and parity do not depend on them), TensorRT FP16 engine + parity vs ONNX Runtime CPU, `aucues bench
#   model` torch-cuda (fp32, AMP) vs ORT-CUDA vs TensorRT at batch 1/8/64, one AMP training step CE vs
#   CE+AU, the ONNX landmark networks on CUDA and TensorRT (`aucues bench landmarks`: latency per
#   network and batch, parity with the CPU), then (last: the global limit cuts it first) INT8 export
#   calibrated on synthetic aligned faces + a TensorRT engine from it.
# Python: `aucues` from --python, else the first of .venv-gpu, .venv, python3 where it imports, else
# .venv-gpu made here on top of python3's own packages (--system-site-packages: a GPU image's torch):
#   with a package registry: pip install -e '.[gpu]';
#   offline (--wheels DIR): the wheels in DIR, then aucues itself, all --no-deps: DIR holds only what
#   the image lacks (a machine that can take little with it: onnxslim, ...; see docs/gpu_check.md).
# A missing onnxslim exports with --no-simplify (said in the report); a missing TensorRT or CUDA
# provider fails or skips its steps with the reason, and the rest still runs.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_MD="$ROOT/docs/gpu.md"
DRY=0
TOTAL=460
PY=""
WHEELS=""
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_MD=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --timeout) TOTAL=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --workdir) WORK=$2; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
done

START=$(date +%s)
DEADLINE=$((START + TOTAL))
WORK=${WORK:-$(mktemp -d /tmp/aucues-gpu-check.XXXXXX)}
mkdir -p "$WORK"
BODY="$WORK/body.md"
SUMMARY="$WORK/summary.md"
: >"$BODY"
: >"$SUMMARY"
cd "$ROOT" || exit 1

remaining() { echo $((DEADLINE - $(date +%s))); }

# step NAME LIMIT_S CMD...: run guarded, record status, time and the output's tail
step() {
  local name=$1 limit=$2
  shift 2
  local left
  left=$(remaining)
  if [ "$left" -le 5 ]; then
    echo "| $name | skipped (global timeout) | - |" >>"$SUMMARY"
    printf '## %s\n\nskipped: the global %s s limit was reached\n\n' "$name" "$TOTAL" >>"$BODY"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[gpu_check] $name (limit ${limit} s)" >&2
  local t0 rc t
  t0=$(date +%s)
  # bash -c: the command may be one of the functions below (exported); timeout needs a program
  timeout -k 5 "$limit" bash -c '"$@"' step "$@" >"$WORK/step.out" 2>&1
  rc=$?
  t=$(($(date +%s) - t0))
  local state="ok"
  [ $rc -ne 0 ] && state="FAILED (exit $rc)"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && state="TIMED OUT after ${limit} s"
  echo "| $name | $state | ${t} s |" >>"$SUMMARY"
  {
    printf '## %s\n\n%s, %s s: `%s`\n\n' "$name" "$state" "$t" "$*"
    if [ -n "${SHOW_MD:-}" ] && [ -f "$SHOW_MD" ] && [ $rc -eq 0 ]; then
      sed 's/^# /### /' "$SHOW_MD"
      echo
    else
      echo '```'
      tail -n 40 "$WORK/step.out" | cut -c1-300
      echo '```'
      echo
    fi
  } >>"$BODY"
  SHOW_MD=""
  return 0
}

# ---- Python with aucues (and the gpu extra) -------------------------------------------------------
find_python() {
  local cand
  for cand in "$ROOT/.venv-gpu/bin/python" "$ROOT/.venv/bin/python" python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import aucues.cli.main" >/dev/null 2>&1; then
      PY=$cand
      return 0
    fi
  done
  return 1
}
install_gpu_venv() {
  # --system-site-packages: the machine's own torch/CUDA stack stays usable where it fits the pins
  python3 -m venv --system-site-packages "$ROOT/.venv-gpu" || return 1
  local pip=("$ROOT/.venv-gpu/bin/python" -m pip install -q --no-cache-dir)
  if [ -n "$WHEELS" ]; then
    # offline: only what the image lacks travels; nothing is resolved (no index to resolve against)
    # --ignore-requires-python: the image's Python may be newer than the pinned set-up's (the steps
    # here need none of the pinned-only packages)
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
      "${pip[@]}" --no-index --no-deps --ignore-requires-python "$WHEELS"/*.whl || return 1
    fi
    # aucues as a wheel among them (scripts/gpu_wheels.sh builds it), else built here from the image's
    # setuptools (>= 77 for the SPDX license string)
    ls "$WHEELS"/aucues-*.whl >/dev/null 2>&1 ||
      "${pip[@]}" --no-index --no-deps --no-build-isolation --ignore-requires-python -e "$ROOT"
  else
    "${pip[@]}" -e "$ROOT[gpu]"
  fi
}
export ROOT WHEELS
export -f install_gpu_venv
if [ -z "$PY" ] && ! find_python; then
  step "install aucues[gpu] into .venv-gpu" 200 install_gpu_venv
  PY="$ROOT/.venv-gpu/bin/python"
fi
echo "| python | $PY | - |" >>"$SUMMARY"
AUCUES=("$PY" -m aucues.cli.main)

# ---- sizes: the real check, or a tiny CPU rehearsal -------------------------------------------------
if [ $DRY -eq 1 ]; then
  BACKBONE=resnet18; SIZE=64; BATCHES=1,2; RUNS=3; TRAIN_BATCH=4; DEVICE=cpu; AMP=""; PER_CLASS=2
else
  BACKBONE=resnet50; SIZE=224; BATCHES=1,8,64; RUNS=20; TRAIN_BATCH=32; DEVICE=cuda; AMP=--amp; PER_CLASS=6
fi

card() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  else
    echo "no nvidia-smi on this machine"
    [ $DRY -eq 1 ]
  fi
}
make_checkpoint() {
  "$PY" - "$BACKBONE" "$SIZE" "$WORK/model.pt" <<'EOF'
import sys, torch
from aucues.preprocessing import PreprocessConfig
from aucues.train.checkpoint import save_checkpoint
from aucues.train.models import ModelConfig, build_model
torch.manual_seed(0)
m = build_model(ModelConfig(backbone=sys.argv[1], weights="random"), PreprocessConfig(image_size=int(sys.argv[2])))
save_checkpoint(sys.argv[3], m, {})
print("wrote", sys.argv[3])
EOF
}
export PY DRY BACKBONE SIZE WORK
export -f card make_checkpoint
CARD=$(card 2>&1 | head -n 3)
step "card (nvidia-smi)" 20 card
step "aucues doctor" 60 "${AUCUES[@]}" doctor

step "random-weight checkpoint ($BACKBONE, $SIZE px, large maps)" 60 make_checkpoint
SIMPLIFY=()
if ! "$PY" -c "import onnxslim" >/dev/null 2>&1; then
  SIMPLIFY=(--no-simplify)
  echo "| onnxslim | not installed: exports with --no-simplify | - |" >>"$SUMMARY"
fi
step "ONNX export (FP32, verified vs PyTorch)" 120 "${AUCUES[@]}" export "$WORK/model.pt" --out "$WORK/model.onnx" \
  "${SIMPLIFY[@]}"
step "TensorRT FP16 engine + parity vs ONNX Runtime CPU" 240 \
  "${AUCUES[@]}" engine "$WORK/model.onnx" --out "$WORK/model_fp16.plan" --fp16 --max-batch 64
SHOW_MD="$WORK/bench_model/model.md"
step "bench model: torch-cuda (fp32, AMP) vs ORT-CUDA vs TensorRT, batch $BATCHES" 300 \
  "${AUCUES[@]}" bench model --onnx "$WORK/model.onnx" --backends torch,ort,trt --batch-sizes "$BATCHES" \
  --runs "$RUNS" --max-seconds 40 --out "$WORK/bench_model"
SHOW_MD="$WORK/bench_train/train.md"
step "one training step CE vs CE+AU ($DEVICE ${AMP:-fp32})" 120 \
  "${AUCUES[@]}" bench train --backbone "$BACKBONE" --image-size "$SIZE" --batch-size "$TRAIN_BATCH" \
  --runs 10 --device "$DEVICE" $AMP --out "$WORK/bench_train"

SHOW_MD="$WORK/bench_landmarks/landmarks.md"
step "ONNX landmark networks on CPU, CUDA, TensorRT FP16 (ONNX Runtime) + parity vs CPU" 240 \
  "${AUCUES[@]}" bench landmarks --providers cpu,cuda,tensorrt --batch-sizes "$BATCHES" --runs "$RUNS" \
  --cache "$WORK/trt_cache" --out "$WORK/bench_landmarks"

step "calibration faces (aucues data synth, $SIZE px)" 60 \
  "${AUCUES[@]}" data synth --out "$WORK/faces" --per-class "$PER_CLASS" --image-size "$SIZE" --force
# --min-top1 0: random-weight logits nearly tie, so top-1 agreement measures rounding, not the model
# (docs/export.md); the per-image CAM and attention cosines are still checked
step "INT8 export (QDQ, symmetric int8 activations for TensorRT; verified vs FP32 on held-out faces)" 150 \
  "${AUCUES[@]}" export "$WORK/model.pt" --int8 --int8-activations int8 --calibration "$WORK/faces" \
  --out "$WORK/model_int8.onnx" --min-top1 0 "${SIMPLIFY[@]}"
step "TensorRT engine from the INT8 QDQ graph + parity vs ONNX Runtime CPU" 180 \
  "${AUCUES[@]}" engine "$WORK/model_int8.onnx" --out "$WORK/model_int8.plan" --fp16 --max-batch 64

# ---- docs/gpu.md -----------------------------------------------------------------------------------
END=$(date +%s)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
TMP_MD="$OUT_MD.tmp.$$"
mkdir -p "$(dirname "$OUT_MD")"
{
  echo "# GPU check"
  echo
  if [ $DRY -eq 1 ]; then
    echo "**DRY RUN without a GPU** (tiny $BACKBONE at $SIZE px on the CPU): it rehearses the script's steps;"
    echo "none of the numbers below is a GPU result."
    echo
  fi
  echo "Written by \`scripts/gpu_check.sh$([ $DRY -eq 1 ] && echo ' --dry-run')\` on $(date -u +%Y-%m-%dT%H:%MZ), commit $REV, in $((END - START)) s."
  echo
  echo "Card: $CARD"
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
  cat "$SUMMARY"
  echo
  cat "$BODY"
} >"$TMP_MD" && mv "$TMP_MD" "$OUT_MD"
echo "[gpu_check] wrote $OUT_MD ($((END - START)) s; work files in $WORK)" >&2
