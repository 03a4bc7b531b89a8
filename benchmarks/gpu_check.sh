#!/usr/bin/env bash
# The prepared GPU check: one command for a GPU machine's short window. It installs the carried
# wheels beside the machine's own torch, runs the CUDA tests, measures decoding, the model and
# the full pipeline (SSCD's ResNet-50 with random weights, nvJPEG and CPU decoding, bf16 and
# fp16), times the exact self-join at 1M and 10M rows against brute force on a sample, and
# writes everything it printed to one log.
#
#   benchmarks/gpu_wheels.sh                       # first, where PyPI is reachable: fills .whl/
#   benchmarks/gpu_check.sh [LOG_DIR]              # on the GPU machine (carry .whl)
#   benchmarks/gpu_check.sh --dry-run [LOG_DIR]    # every step on the CPU at toy size (CI)
#
# LOG_DIR defaults to $GPU_CHECK_LOG, else ./gpu-check; the log is LOG_DIR/gpu_check.log. Sizes
# are set for about 8 minutes on one H200; GPU_CHECK_IMAGES and GPU_CHECK_ROWS override them.
# Exit status: 0 when every step passed, 1 when one failed (the others still ran).
set -uo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then
    dry_run=1
    shift
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
log_dir=${1:-${GPU_CHECK_LOG:-$repo/gpu-check}}
python=${PYTHON:-python3}
mkdir -p "$log_dir"
log="$log_dir/gpu_check.log"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

if [ "$dry_run" = 1 ]; then
    images=${GPU_CHECK_IMAGES:-8} size=320x240 rows=${GPU_CHECK_ROWS:-20000} sample=200
    device=cpu runs="cpu:auto" repeat=1 batch=4 workers=1
    tests=(tests/test_gpu.py)
else
    images=${GPU_CHECK_IMAGES:-4096} size=1024x768 rows=${GPU_CHECK_ROWS:-1000000,10000000}
    sample=2000 device=cuda runs="device:bf16 cpu:bf16 device:fp16" repeat=2 batch=256 workers=
    tests=(tests/test_gpu.py tests/test_device_decode.py tests/test_tiled_join.py
        tests/test_out_of_memory.py)
fi
started=$SECONDS

step() {  # step NAME COMMAND...: runs it, times it, remembers a failure and goes on
    local name=$1 began=$SECONDS
    shift
    echo
    echo "=== $name"
    if "$@"; then
        echo "=== $name: passed in $((SECONDS - began)) s"
    else
        echo "=== $name: FAILED (exit $?) after $((SECONDS - began)) s"
        echo "$name" >>"$scratch/failed"
    fi
}

install_wheels() {
    shopt -s nullglob
    local wheels=("$repo"/.whl/*.whl)
    shopt -u nullglob
    if [ "$dry_run" = 1 ]; then
        echo "dry run: the wheels in .whl/ (${#wheels[@]}) are not installed; this Python's packages are used"
    elif [ ${#wheels[@]} = 0 ]; then
        echo "no wheels in .whl/: run benchmarks/gpu_wheels.sh where PyPI is reachable, and carry .whl"
        return 1
    else
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --disable-pip-version-check --target "$scratch/site" "${wheels[@]}" || return 1
        echo "installed into $scratch/site: ${wheels[*]##*/}"
    fi
    export PYTHONPATH="$scratch/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
}

versions() {
    date -u +"%Y-%m-%d %H:%M:%S UTC"
    uname -srm
    echo "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || return 1
    else
        echo "nvidia-smi: not found"
    fi
    "$python" - <<'PY'
import importlib, platform
import torch
print(f"python {platform.python_version()}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"cuda available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}"
         if torch.cuda.is_available() else ""))
for name in ("torchvision", "numpy", "PIL", "cv2", "faiss", "onnxruntime", "open_clip", "dedup_gpu"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')} from {module.__file__}")
    except Exception as error:
        print(f"  {name}: not importable ({type(error).__name__}: {error})")
PY
}

cuda_tests() {
    (cd "$repo" && timeout 240 "$python" -m pytest -q -rs -p no:cacheprovider "${tests[@]}")
}

make_images() (
    cd "$repo" && "$python" - "$scratch" "$images" "$size" <<'PY'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import skimage
from PIL import Image

sys.path.insert(0, "benchmarks")
from throughput import make_jpegs

scratch, count, size = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
width, height = (int(side) for side in size.split("x"))
photos = scratch / "photos"
photos.mkdir()
for name in ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field"):
    try:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(photos / f"{name}.png")
    except Exception as error:  # a data file this scikit-image lacks
        print(f"  (no {name}: {error})")
chunks = min(16, count)
folders = [scratch / "jpegs" / f"{part:02d}" for part in range(chunks)]
for folder in folders:
    folder.mkdir(parents=True)
with ProcessPoolExecutor() as pool:
    made = pool.map(make_jpegs, [-(-count // chunks)] * chunks, folders,
                    [photos] * chunks, [width] * chunks, [height] * chunks, range(chunks))
    print(f"made {sum(len(paths) for paths in made)} {size} JPEGs from {len(list(photos.iterdir()))} photos")
PY
)

throughput() {  # throughput DECODE AMP
    (cd "$repo" && timeout 150 "$python" benchmarks/throughput.py "$scratch/jpegs" --random-sscd \
        --stages abc --device "$device" --decode "$1" --amp "$2" --batch-size "$batch" \
        --repeat "$repeat" ${workers:+--workers "$workers"})
}

self_join() {
    local arguments=()
    IFS=, read -ra counts <<<"$rows"
    for count in "${counts[@]}"; do arguments+=(--n "$count"); done
    (cd "$repo" && timeout 420 "$python" benchmarks/gpu_join.py "${arguments[@]}" --device "$device" \
        --sample "$sample" --time-limit 240)
}

all_steps() {
    echo "dedup-gpu GPU check$([ "$dry_run" = 1 ] && echo ' (dry run: CPU, toy sizes)'); log: $log"
    step "install the carried wheels" install_wheels
    step "versions" versions
    step "CUDA tests" cuda_tests
    step "make $images JPEGs" make_images
    for run in $runs; do
        step "throughput, decode ${run%%:*}, autocast ${run##*:}" throughput "${run%%:*}" "${run##*:}"
    done
    step "exact self-join" self_join
}

summary() {
    echo
    echo "=== summary ($((SECONDS - started)) s in all)"
    grep -E "^device|images/s$|^\(c\) / min|rows, (torch|faiss)|skipped, predicted|^=== .*(passed|FAILED)" "$log"
    if [ -s "$scratch/failed" ]; then
        echo "FAILED: $(paste -sd, "$scratch/failed")"
        return 1
    fi
    echo "every step passed"
}

all_steps 2>&1 | tee "$log"
summary 2>&1 | tee -a "$log"
