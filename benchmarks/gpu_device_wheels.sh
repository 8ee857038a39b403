#!/usr/bin/env bash
# Download the wheels the GPU machine lacks into .whl/ (ignored by git), for a device run of
# benchmarks/gpu_check.sh. The machine's image (Python 3.12) has torch, numpy, scipy, einops and tqdm; it
# lacks SimpleITK, MONAI, cc3d, pynrrd, nibabel and slicerio. Together they are about 61 MiB, which with
# the repository (under 2 MiB) fits the 64 MiB that travel with a run.
#
# Usage, here (needs PyPI):  bash benchmarks/gpu_device_wheels.sh
# Then, on the device (one command; carry: [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \
#     GPU_CHECK_STEPS=gpu_speed bash benchmarks/gpu_check.sh - "$OUT"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    "SimpleITK>=2.3" "monai>=1.5" "connected-components-3d>=3.12" "pynrrd>=1.0" "nibabel>=5.0" "slicerio>=1.0"
du -ch .whl/*.whl | tail -1
