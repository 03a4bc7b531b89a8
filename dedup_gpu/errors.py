"""Typed exceptions. The CLI turns each into one line plus a hint; library users catch them."""

from __future__ import annotations


class DedupError(Exception):
    """Base class for every error dedup-gpu raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class BadArgumentError(DedupError):
    """A command-line or API argument that cannot be used as given."""


class DeviceUnavailableError(DedupError):
    """The requested device (e.g. cuda) is not present or not usable."""


class UnknownModelError(DedupError):
    """The model name is not in the registry and cannot be parsed as a family:name spec."""


class ModelUnavailableError(DedupError):
    """The model's weights or runtime are not installed and could not be fetched."""


class ChecksumMismatchError(ModelUnavailableError):
    """A downloaded or local weights file does not have the recorded SHA-256."""


class OutputError(DedupError):
    """A report or other output file could not be written."""


class ReportError(BadArgumentError):
    """A report file given to review, audit, apply or export is missing, malformed or too old."""


class IndexBackendError(DedupError):
    """No usable FAISS build is installed."""


class ClusterError(DedupError):
    """A Ray cluster that cannot be used: Ray not installed, an address that does not answer,
    workers that cannot load the model, see the images or share the shard folder."""


class CatalogError(DedupError):
    """A catalog folder that cannot be used: missing, damaged, or from a newer dedup-gpu."""


class CatalogBusyError(CatalogError):
    """Another process is writing to the catalog; a second writer is refused, never interleaved."""


class CatalogDamagedError(CatalogError):
    """The catalog's database fails SQLite's checks: `dedup-gpu catalog repair` salvages it."""


class CatalogModelMismatchError(CatalogError):
    """The catalog's embeddings come from another model or preprocessing than this run's."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
