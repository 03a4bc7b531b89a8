"""dedup-gpu: find exact and near-duplicate images with deep embeddings, on GPU or CPU.

The pipeline runs one way through one module per stage: sources -> exact -> data -> encoders ->
index -> verify -> group -> report; `pipeline.scan` ties them together and `cli` is the command
line. A catalog (`catalog`, written by `ingest`) keeps embeddings between runs. A saved report
is read back (`report.read_report`) for `review`, `audit`, `actions` (apply, undo) and `export`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):  # keep `import dedup_gpu` free of torch/faiss imports
    if name in ("scan", "ScanResult", "groups_from_catalog"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("index_catalog", "check_images"):
        from . import ingest

        return getattr(ingest, name)
    raise AttributeError(name)


__all__ = [
    "ScanResult",
    "__version__",
    "check_images",
    "groups_from_catalog",
    "index_catalog",
    "scan",
]
