#!/usr/bin/env bash
# GPU check: the issue #13 benchmark (about 6 minutes), the speed modes on a real CT and training
# throughput (about 4 minutes more) on an H100/H200.
#
# Usage (from the repository root, torch + CUDA and our dependencies installed):
#     bash benchmarks/gpu_check.sh CT_PATH [OUT_DIR]
#     GPU_CHECK_STEPS="gpu_speed" bash benchmarks/gpu_check.sh - [OUT_DIR]   # only the issue #13 table
# CT_PATH: a CT file (e.g. a copy of ../shared/data/ct/totalseg_example/example_ct.nii.gz carried to the
# machine); it is resampled to 0.8 mm isotropic (an abdomen-sized input, 80 windows faithful at 1.5 mm).
# Not needed by gpu_speed (it synthesises its CTs): "-" when speed_modes is not among the steps.
# OUT_DIR: where the tables and JSON go (default: $OUT, else /tmp/gpu_check).
# GPU_CHECK_STEPS: the steps to run, of "gpu_speed speed_modes training" (default: all three).
# Each step has its own time limit, so one slow step cannot eat the others' time.
set -uo pipefail
CT="${1:?usage: bash benchmarks/gpu_check.sh CT_PATH [OUT_DIR]}"
OUT_DIR="${2:-${OUT:-/tmp/gpu_check}}"
PYTHON="${PYTHON:-python3}"
STEPS=" ${GPU_CHECK_STEPS:-gpu_speed speed_modes training} "
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT_DIR"
cd "$REPO_ROOT" || exit 1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
"$PYTHON" -c "import torch, monai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'monai', monai.__version__)" \
    | tee -a "$OUT_DIR/gpu.txt"

if [[ "$STEPS" == *" gpu_speed "* ]]; then
    # Its own budget (330 s) skips rows past it; the timeout only stops a hung run. Its work folder (CTs,
    # checkpoints, .seg.nrrd outputs: about 1 GB) is a temporary folder, not OUT_DIR.
    echo "== gpu_speed.py (issue #13): official loop vs speed modes, synthetic CT, 48 and 80 windows"
    timeout 420 "$PYTHON" benchmarks/gpu_speed.py --device cuda --budget-s 330 \
        --json-out "$OUT_DIR/gpu_speed.json" 2>&1 | tee "$OUT_DIR/gpu_speed.txt"
fi

if [[ "$STEPS" == *" speed_modes "* ]]; then
    for backbone in swinunetr unet; do
        echo "== speed modes, $backbone, CUDA, $(basename "$CT") at 0.8 mm"
        timeout 100 "$PYTHON" benchmarks/speed_modes.py --device cuda --backbone "$backbone" --ct "$CT" \
            --resample-mm 0.8 --modes faithful balanced fast --json-out "$OUT_DIR/speed_$backbone.json" \
            2>&1 | tee "$OUT_DIR/speed_$backbone.txt"
    done
fi

if [[ "$STEPS" == *" training "* ]] && [ -f benchmarks/training_throughput.py ]; then
    echo "== training throughput, CUDA, roi 96, bf16 autocast"
    timeout 60 "$PYTHON" benchmarks/training_throughput.py --devices cuda --iterations 3 --batch 2 \
        --backbones unet swinunetr 2>&1 | tee "$OUT_DIR/training_throughput.txt"
fi
