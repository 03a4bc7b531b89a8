"""Weights files: download on first use into a user cache with a progress bar, verify SHA-256,
or take a local path. Downloads go to a temporary name and are renamed only once verified, so a
cut-off or corrupted download never leaves a file that looks complete."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChecksumMismatchError, ModelUnavailableError
from ..progress import progress_bars

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file comes from and what it must hash to.

    `sha256` is a full hex digest, or a prefix of one (torchvision puts 8-10 hex digits of the
    SHA-256 in its file names). None means the publisher gives no checksum and none could be
    measured here: the first download's digest is then recorded beside the file and every later
    load is checked against it.
    """

    url: str
    filename: str
    sha256: str | None = None


def cache_dir() -> Path:
    """$DEDUP_GPU_CACHE, else $XDG_CACHE_HOME/dedup-gpu, else ~/.cache/dedup-gpu."""
    if os.environ.get("DEDUP_GPU_CACHE"):
        return Path(os.environ["DEDUP_GPU_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dedup-gpu"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded_digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _record_digest(path: Path, digest: str, source: WeightsSource) -> None:
    _recorded_digest_path(path).write_text(f"{digest}  {source.filename}\n")


def verify(path: Path, source: WeightsSource) -> str:
    """Check `path` against the pinned digest, else the one recorded beside it; an unpinned file
    seen for the first time (e.g. copied in by hand) has its digest recorded. Returns the digest."""
    actual = sha256_of(path)
    expected = source.sha256
    recorded = _recorded_digest_path(path)
    if expected is None and recorded.exists():
        expected = recorded.read_text().split()[0]
    if expected is None:
        _record_digest(path, actual, source)
    elif not actual.startswith(expected.lower()):
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {actual}, expected {expected}: the file is corrupted or is not "
            f"the published {source.filename}",
            hint=f"delete {path} and run again to download it afresh, or pass --weights PATH",
        )
    return actual


def cached_path(source: WeightsSource, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / source.filename


def fetch(
    source: WeightsSource, directory: Path | None = None, *, progress: bool = True
) -> tuple[Path, str]:
    """Return a verified local copy of `source` and its SHA-256, downloading it if needed."""
    target = cached_path(source, directory)
    if target.exists():
        return target, verify(target, source)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        _download(source.url, partial, progress=progress)
        actual = sha256_of(partial)
        if source.sha256 is not None and not actual.startswith(source.sha256.lower()):
            raise ChecksumMismatchError(
                f"the download of {source.url} has SHA-256 {actual}, expected {source.sha256}: "
                "it was corrupted or the published file changed; nothing was kept",
                hint="run again; if it persists, download the file by hand and pass --weights PATH",
            )
        os.replace(partial, target)
        if source.sha256 is None:
            _record_digest(target, actual, source)
    finally:
        partial.unlink(missing_ok=True)
    return target, actual


def availability(
    source: WeightsSource, weights: str | None = None, directory: Path | None = None
) -> str | None:
    """None when `weights` (a --weights path) or the cached file is there; else why not."""
    if weights is not None:
        return None if Path(weights).is_file() else f"{weights} does not exist"
    if cached_path(source, directory).exists():
        return None
    return f"downloads on first use from {source.url}"


def local_or_fetch(
    source: WeightsSource,
    weights: str | None,
    directory: Path | None = None,
    *,
    progress: bool = True,
) -> tuple[Path, str]:
    """The --weights file as given (not checked against the source: it may be fine-tuned), or
    a verified download of `source`; with its SHA-256 either way, for the report."""
    if weights is None:
        return fetch(source, directory, progress=progress)
    path = Path(weights)
    if not path.is_file():
        raise ModelUnavailableError(f"--weights {weights}: no such file")
    return path, sha256_of(path)


def _download(url: str, destination: Path, *, progress: bool) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ModelUnavailableError(
            f"cannot download {url}: {reason}",
            hint=f"on an offline machine, copy the file to {destination.with_suffix('')} "
            "or pass --weights PATH",
        ) from error
    received = 0
    with response, open(destination, "wb") as out, progress_bars(progress, in_bytes=True) as bars:
        total = int(response.headers.get("Content-Length") or 0) or None
        task = bars.add_task(f"downloading {os.path.basename(url)}", total=total)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            bars.advance(task, len(chunk))
    # A connection closed early ends the read loop without an error; only the length tells.
    if total is not None and received < total:
        raise ModelUnavailableError(
            f"the download of {url} was cut off after {received} of {total} bytes; "
            "nothing was kept",
            hint="run again, or download the file by hand and pass --weights PATH",
        )
