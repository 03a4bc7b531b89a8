"""`dedup-gpu catalog verify` and `catalog repair`: what a catalog has lost, and mending it.

verify reads everything and changes nothing: SQLite's quick_check of the database, each
shard's length and BLAKE2b digest, the saved search index. repair first rebuilds a damaged
database from every row that can still be read (catalog_salvage.py; the damaged file is kept),
then embeds again, from the image files, every image whose stored embedding is lost, and saves
a fresh search index. An image whose embedding is lost and whose file cannot be read now is
named and left for a later repair.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import storage
from .catalog import DATABASE, Catalog, CatalogHealth, quick_check_findings
from .catalog_salvage import Salvage, salvage_database
from .data import DEFAULT_MAX_PIXELS
from .device import gpu_number
from .encoders.base import Encoder
from .errors import CatalogDamagedError, CatalogError
from .index import SearchSettings
from .ingest import IndexRun, embed_into, open_catalog_encoder
from .records import FileError, ImageFile
from .redact import HIDDEN


def verify_catalog(catalog: str | os.PathLike[str]) -> CatalogHealth:
    """What is wrong with `catalog` (nothing, when `.problems` is empty); changes nothing."""
    directory = Path(catalog)
    findings = database_findings(directory)
    if findings:
        return CatalogHealth(findings, [], 0, False)
    try:
        with Catalog(directory) as store, store.reading():
            return store.health()
    except CatalogDamagedError as error:
        return CatalogHealth([str(error)], [], 0, False)


def database_findings(directory: Path) -> list[str]:
    """SQLite's quick_check of the catalog's database, read-only: empty when it is sound."""
    database = directory / DATABASE
    if not database.exists():
        raise CatalogError(f"no catalog at {directory}")
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as error:
        return [str(error)]
    try:
        return quick_check_findings(connection)
    except sqlite3.OperationalError as error:
        raise CatalogError(f"cannot read catalog {directory}: {error}") from error
    except sqlite3.DatabaseError as error:
        return [str(error)]
    finally:
        connection.close()


@dataclass
class Repair:
    """What `repair_catalog` did."""

    catalog: str
    salvage: Salvage | None = None  # set when the database was damaged and rebuilt
    lost: int = 0  # images whose stored embedding was lost
    run: IndexRun | None = None  # the re-embedding of those that could be read
    unreadable: list[FileError] = field(default_factory=list)  # lost, and unreadable now
    seconds: float = 0.0


def repair_catalog(
    catalog: str | os.PathLike[str],
    *,
    device: str = "auto",
    weights: str | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    encoder: Encoder | None = None,
) -> Repair:
    """Make `catalog` whole again, as far as the image files allow (see the module's doc)."""
    started = time.perf_counter()
    directory = Path(catalog)
    result = Repair(catalog=str(catalog))
    if database_findings(directory):
        result.salvage = salvage_database(directory)
    with Catalog(directory, write=True) as store:
        if store.model is None:
            result.seconds = time.perf_counter() - started
            return result  # nothing embedded (or the model record was lost): index again
        lost = sorted(store.unreadable_embeddings(check_digests=True))
        result.lost = len(lost)
        readable: list[ImageFile] = []
        for path in lost:
            if HIDDEN in path:  # its credentials were never stored
                result.unreadable.append(
                    FileError(
                        path,
                        "its URL needs credentials a catalog does not keep; index it "
                        "again from the URL with them",
                    )
                )
                continue
            try:
                found = storage.stat(path)
            except (OSError, storage.StorageError) as error:
                result.unreadable.append(FileError(path, f"cannot be read now: {error}"))
                continue
            readable.append(ImageFile(path, found.size, found.mtime))
        rebuild = bool(result.salvage) or bool(lost) or store.index_state is None
        if readable:
            encoder = open_catalog_encoder(store, None, device, weights, progress, encoder)
            run_id = store.begin_run("repair", {"paths": [], "lost": len(lost)})
            run = IndexRun(catalog=str(catalog), model=encoder.spec.name)
            run.repaired = len(readable)
            embed_into(
                store,
                run_id,
                run,
                readable,
                encoder=encoder,
                batch_size=batch_size,
                workers=workers,
                max_pixels=max_pixels,
                thumbnails=True,
                progress=progress,
            )
            store.finish_run(run_id, {"repaired": run.repaired, "failed": run.failed})
            result.run = run
        images = store.images().without({error.path for error in result.unreadable})
        if rebuild and len(images):
            gpu = gpu_number(encoder.device) if encoder is not None else None
            store.search_index(images, SearchSettings(), gpu=gpu, save=True)
        store.tidy()
    result.seconds = time.perf_counter() - started
    return result


__all__ = ["Repair", "database_findings", "repair_catalog", "verify_catalog"]
