"""dedup-gpu: find exact and near-duplicate images with deep embeddings, on GPU or CPU.

The pipeline runs one way through one module per stage: sources -> exact -> data -> encoders ->
index -> group -> report; `pipeline.scan` ties them together and `cli` is the command line.
"""

__version__ = "0.1.0"


def __getattr__(name: str):  # keep `import dedup_gpu` free of torch/faiss imports
    if name in ("scan", "ScanResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)


__all__ = ["ScanResult", "__version__", "scan"]
