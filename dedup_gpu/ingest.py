"""Writing to a catalog: `index_catalog` (add what is new or changed, forget what was deleted)
and `check_images` (is this upload a copy of something already stored? optionally add it).

Both embed through the same DataLoader and encoder as `scan`, hashing each file from the bytes
the decoder reads, and commit a batch at a time (see catalog.py for why that is crash-safe).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import storage
from .catalog import Catalog, StoredImage, catalog_key, model_identity, refuse_damaged
from .data import DEFAULT_MAX_PIXELS
from .device import gpu_number
from .encoders import default_model
from .encoders.base import Encoder
from .errors import BadArgumentError, CatalogError, DedupError
from .index import Pairs, SearchSettings, find_pairs
from .pipeline import default_threshold, embedded_batches, open_encoder, validate_options
from .progress import progress_bars
from .records import FileError, ImageFile, Verdict
from .redact import HIDDEN
from .sources import discover, refuse_unreadable_roots, unreadable_roots
from .storage import StorageError
from .verify import THUMBNAIL_SIZE, Verifier, resolve_mode


@dataclass
class IndexRun:
    """What one `index` run changed in the catalog."""

    catalog: str
    model: str
    added: int = 0  # paths not in the catalog before
    changed: int = 0  # size or modification time differed: embedded again
    repaired: int = 0  # unchanged, but the stored embedding was lost (shard gone): embedded again
    forgotten: int = 0  # deleted from disk since the last run
    unchanged: int = 0
    failed: int = 0  # new or changed files that could not be used (see errors)
    images: int = 0  # images with an embedding in the catalog after the run
    errors: list[FileError] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "model": self.model,
            "added": self.added,
            "changed": self.changed,
            "repaired": self.repaired,
            "forgotten": self.forgotten,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "images": self.images,
            "errors": [{"path": e.path, "reason": e.reason} for e in self.errors],
            "search": self.search,
            "seconds": round(self.seconds, 3),
        }


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _under(path: str, roots: Sequence[str]) -> bool:
    """`path` is a root, under a root folder or prefix, or a member of a root container."""
    return any(
        path == root
        or path.startswith(root.rstrip(os.sep) + os.sep)
        or path.startswith(root.rstrip("/") + "/")  # a prefix of URLs
        or path.startswith(root + "#")
        for root in roots
    )


def _absolute(found_files: Sequence[ImageFile]) -> list[ImageFile]:
    """Local paths made absolute; URLs kept; a local container made absolute, `#member` kept."""
    return [
        ImageFile(path=storage.absolute(f.path), size=f.size, mtime=f.mtime) for f in found_files
    ]


def _stat_error_path(path: str) -> tuple[int, float] | None:
    """Size and mtime of a path that failed, to retry it only once it changes; None if gone."""
    if storage.is_local(path):
        try:
            status = os.lstat(path)
        except OSError:
            return None
        return status.st_size, status.st_mtime
    try:
        found = storage.stat(path)
    except StorageError as error:
        parts = storage.split_member(path)
        if error.missing or parts is None:
            return None
        try:  # a row with no image bytes: retried once its table changes
            return 0, storage.container_mtime(parts[0])
        except StorageError:
            return None
    return found.size, found.mtime


def open_catalog_encoder(
    store: Catalog,
    model: str | None,
    device: str,
    weights: str | None,
    progress: bool,
    encoder: Encoder | None,
) -> Encoder:
    """The encoder for this catalog: its recorded model unless one is named; a model that
    differs from the recorded one is refused before anything is embedded."""
    recorded = store.model
    if encoder is None:
        name = model or (recorded["name"] if recorded else default_model())
        encoder = open_encoder(name, device, weights=weights, progress=progress)
    store.bind_model(model_identity(encoder.spec, encoder.weights_sha256))
    return encoder


def index_catalog(
    paths: Sequence[str],
    catalog: str | os.PathLike[str],
    *,
    from_list: str | None = None,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumbnails: bool = True,
    search: SearchSettings | None = None,
    progress: bool = False,
    encoder: Encoder | None = None,
    image_column: str | None = None,
    name_column: str | None = None,
    forget_missing: bool = False,
) -> IndexRun:
    """Bring `catalog` up to date with the images under `paths`: embed new and changed files,
    forget deleted ones, then save the search index. Files elsewhere in the catalog (added from
    other paths) are left alone. Safe to kill at any moment: the next run resumes.

    A path given that cannot be read at all (missing, unmounted) stops the run before anything
    is forgotten, unless `forget_missing`: then its catalogued images are forgotten."""
    started = time.perf_counter()
    validate_options(batch_size=batch_size, workers=workers, max_pixels=max_pixels)
    search = search or SearchSettings()
    if not paths and not from_list:
        raise BadArgumentError("no images given", hint="dedup-gpu index FOLDER --catalog DIR")
    with Catalog(catalog, write=True, create=True) as store:
        refuse_damaged(store)
        encoder = open_catalog_encoder(store, model, device, weights, progress, encoder)
        run_id = store.begin_run(
            "index",
            {"paths": [storage.absolute(p) for p in paths], "from_list": from_list},
        )
        result = IndexRun(catalog=str(catalog), model=encoder.spec.name)
        try:
            still_lost = _update(
                store,
                run_id,
                result,
                paths,
                from_list=from_list,
                encoder=encoder,
                batch_size=batch_size,
                workers=workers,
                max_pixels=max_pixels,
                thumbnails=thumbnails,
                progress=progress,
                image_column=image_column,
                name_column=name_column,
                forget_missing=forget_missing,
            )
            # A lost embedding outside this run's paths stays lost (groups names it) until
            # `catalog repair` or an index of its folder embeds it again.
            images = store.images().without(still_lost)
            result.images = len(images)
            if len(images):
                result.search = store.search_index(
                    images, search, gpu=gpu_number(encoder.device), save=True
                ).describe()
            store.tidy()
        except KeyboardInterrupt:
            store.finish_run(run_id, _counts(result), status="interrupted")
            raise
        except DedupError:
            store.finish_run(run_id, _counts(result), status="failed")
            raise
        result.seconds = time.perf_counter() - started
        store.finish_run(run_id, _counts(result))
    return result


def _counts(result: IndexRun) -> dict[str, int]:
    return {
        "added": result.added,
        "changed": result.changed,
        "repaired": result.repaired,
        "forgotten": result.forgotten,
        "unchanged": result.unchanged,
        "failed": result.failed,
    }


def _update(
    store: Catalog,
    run_id: int,
    result: IndexRun,
    paths: Sequence[str],
    *,
    from_list: str | None,
    encoder: Encoder,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    thumbnails: bool,
    progress: bool,
    image_column: str | None,
    name_column: str | None,
    forget_missing: bool,
) -> set[str]:
    """Embed what is new, changed or lost under `paths`, forget what is gone there; returns the
    files whose stored embedding is still lost (outside `paths`), found once by digest here."""
    found = discover(paths, from_list=from_list, image_column=image_column, name_column=name_column)
    # SQLite stores text as UTF-8: a name with other bytes (surrogates here) cannot be a key.
    storable: list[ImageFile] = []
    unstorable: list[ImageFile] = []
    for file in found.files:
        (storable if _is_utf8(file.path) else unstorable).append(file)
    found.errors += [
        FileError(file.path, "the name is not valid UTF-8, which a catalog cannot store; rename it")
        for file in unstorable
    ]
    found.files = storable
    if not forget_missing:
        refuse_unreadable_roots(
            unreadable_roots(found, paths),
            hint="nothing was forgotten; check the path, or pass --forget-missing if it is gone "
            "for good",
        )
    # Read from where they are, known by their catalog key (a URL without its credentials).
    located = _absolute(found.files)
    locations = {catalog_key(file.path): file.path for file in located}
    files = [ImageFile(catalog_key(file.path), file.size, file.mtime) for file in located]
    roots = [catalog_key(storage.absolute(p)) for p in paths]
    if from_list is not None:
        roots += [file.path for file in files]  # listed files count as roots
    known = store.known_files()
    lost = store.unreadable_embeddings(check_digests=True)

    to_embed: list[ImageFile] = []
    for file in files:
        before = known.get(file.path)
        if before is None:
            result.added += 1
        elif before.size != file.size or before.mtime != file.mtime:
            result.changed += 1
        elif file.path in lost:
            result.repaired += 1  # its shard was deleted or cut short: embedded again
        else:
            result.unchanged += 1
            continue
        to_embed.append(file)

    seen = {file.path for file in files}
    unusable: list[tuple[ImageFile, str]] = []
    listed_in = storage.absolute(from_list) if from_list is not None else None
    unread_folders: list[str] = []
    for error in found.errors:
        location = storage.absolute(error.path)
        path = catalog_key(location)
        result.errors.append(FileError(path, error.reason))
        seen.add(path)
        if location == listed_in or not _is_utf8(path):
            continue  # the path list itself, or a name the catalog cannot store
        if os.path.isdir(location):
            unread_folders.append(path)  # its files stay as they were
            continue
        stat = _stat_error_path(location)
        if stat is None:
            continue  # gone: forgotten below
        size, mtime = stat
        before = known.get(path)
        if before is None or (before.size, before.mtime, before.status) != (size, mtime, "error"):
            unusable.append((ImageFile(path, size, mtime), error.reason))
    store.store_errors(run_id, unusable)
    result.failed += len(unusable)

    # Forget only what is really gone: a path missing from this walk because its folder could
    # not be read is still on disk, and so stays. A root where nothing at all was found (an
    # unmounted disk looks like an empty folder) forgets nothing: index its parent to prune it.
    live_roots = [root for root in roots if any(_under(path, [root]) for path in seen)]
    # ... nor is a file under a folder that could not be read: it cannot even be looked up
    # (a folder without search permission), which is not proof that it is gone.
    gone = [
        path
        for path in known
        if path not in seen
        and _under(path, live_roots)
        and not _under(path, unread_folders)
        and not (HIDDEN not in path and storage.exists(path))  # a key with *** cannot be looked up
    ]
    # A URL stored with its credentials (by a release before catalog keys) gives way to its key.
    gone += [path for path in known if catalog_key(path) != path and catalog_key(path) in seen]
    gone = list(dict.fromkeys(gone))
    for root in roots:
        if root not in live_roots and any(_under(path, [root]) for path in known):
            result.errors.append(
                FileError(
                    root,
                    "no images found here now; its catalogued images are kept (an unmounted "
                    "disk?); index the folder above it to forget them",
                )
            )
    result.forgotten = store.forget(gone)
    embed_into(
        store,
        run_id,
        result,
        to_embed,
        locations=locations,
        encoder=encoder,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        thumbnails=thumbnails,
        progress=progress,
    )
    # Each file embedded now is stored anew, with its embedding or as an error.
    return lost - {file.path for file in to_embed}


def embed_into(
    store: Catalog,
    run_id: int,
    result: IndexRun,
    to_embed: Sequence[ImageFile],
    *,
    locations: Mapping[str, str] | None = None,
    encoder: Encoder,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    thumbnails: bool,
    progress: bool,
) -> None:
    """Embed `to_embed` (catalog keys, read from `locations` where a key differs from where
    the file is read) and store each batch as it comes (a kill loses at most the batch in
    flight); a file that cannot be used is stored as an error, with its reason."""
    locations = locations or {}
    with progress_bars(progress and bool(to_embed)) as bars:
        task = bars.add_task(f"embedding with {encoder.spec.name}", total=len(to_embed))
        for batch in embedded_batches(
            [locations.get(file.path, file.path) for file in to_embed],
            encoder,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            thumbnail_size=THUMBNAIL_SIZE if thumbnails else None,
            digests=True,
            listed=[(file.size, file.mtime) for file in to_embed],
        ):
            stored = [
                StoredImage(to_embed[row], digest or "", info, thumbnail)
                for row, info, thumbnail, digest in zip(
                    batch.rows, batch.infos, batch.thumbnails, batch.digests, strict=True
                )
            ]
            store.store(run_id, stored, batch.embeddings)
            failures = [(to_embed[row], reason) for row, reason in batch.failures]
            store.store_errors(run_id, failures)
            result.failed += len(failures)
            result.errors.extend(FileError(file.path, reason) for file, reason in failures)
            bars.advance(task, len(batch.rows) + len(batch.failures))
    result.errors.sort(key=lambda e: e.path)


@dataclass(frozen=True)
class Match:
    """A stored image (or an earlier file of the same check) that an image was compared with."""

    path: str
    score: float  # cosine similarity; 1.0 for identical bytes
    exact: bool  # byte-identical
    duplicate: bool  # this match makes the image a duplicate
    verification: Verdict | None = None  # None: not verified (exact, below threshold, or off)
    earlier_in_check: bool = False  # a file given earlier in the same check, not yet stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": round(self.score, 6),
            "exact": self.exact,
            "duplicate": self.duplicate,
            "verification": self.verification.to_dict() if self.verification else None,
            "earlier_in_check": self.earlier_in_check,
        }


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one image: "duplicate", "new", or "error" (it could not be read)."""

    path: str
    verdict: str
    matches: tuple[Match, ...] = ()
    error: str | None = None
    added: bool = False  # stored in the catalog by this check (--add)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict,
            "matches": [match.to_dict() for match in self.matches],
            "error": self.error,
            "added": self.added,
        }


def check_images(
    paths: Sequence[str],
    catalog: str | os.PathLike[str],
    *,
    add: bool = False,
    create: bool = False,
    threshold: float | None = None,
    verify: str = "auto",
    top: int = 3,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    encoder: Encoder | None = None,
    progress: bool = False,
    image_column: str | None = None,
    name_column: str | None = None,
) -> list[CheckResult]:
    """For each image, its best `top` matches in the catalog and whether it is a duplicate.

    Images are judged in the order given, as if each new one were stored before the next is
    checked: a later copy of an earlier new image is a duplicate of it. With `add`, the new
    images are stored (the duplicates are not); with `create` too, into a new catalog if there
    is none at `catalog` (only `index` creates one otherwise). Unreadable images get verdict
    "error".
    """
    if top < 1:
        raise BadArgumentError(f"--top must be at least 1, not {top}")
    validate_options(workers=workers, threshold=threshold, max_pixels=max_pixels)
    verifying = resolve_mode(verify)
    if not paths:
        raise BadArgumentError("no images given", hint="dedup-gpu check FILE... --catalog DIR")
    if create and not add:
        raise BadArgumentError(
            "--create needs --add", hint="dedup-gpu check FILE... --add --create"
        )
    with Catalog(catalog, write=add, create=create) as store:
        if store.model is None and not add:
            raise CatalogError(
                f"catalog {catalog} holds no images yet",
                hint=f"add some with: dedup-gpu index FOLDER --catalog {catalog}",
            )
        encoder = open_catalog_encoder(store, model, device, weights, progress, encoder)
        threshold = default_threshold(encoder.spec, verifying) if threshold is None else threshold
        found = discover(paths, image_column=image_column, name_column=name_column)
        files = _absolute(found.files)
        results: dict[str, CheckResult] = {
            storage.absolute(e.path): CheckResult(storage.absolute(e.path), "error", error=e.reason)
            for e in found.errors
        }
        embedded = _embed_for_check(files, encoder, workers, max_pixels)
        for row, reason in embedded.failures:
            results[files[row].path] = CheckResult(files[row].path, "error", error=reason)
        judged = _judge(
            store,
            embedded,
            threshold=threshold,
            top=top,
            verifying=verifying,
            encoder=encoder,
            workers=workers,
            max_pixels=max_pixels,
        )
        if add:
            judged = _add_new(store, judged, embedded, encoder, paths)
        results.update({result.path: result for result in judged})
    order = {storage.absolute(p): n for n, p in enumerate(paths)}
    return sorted(results.values(), key=lambda r: (order.get(r.path, len(order)), r.path))


@dataclass
class _CheckBatch:
    files: list[ImageFile]  # the images that decoded, in the order given
    embeddings: np.ndarray  # float16
    digests: list[str]
    infos: list[Any]
    thumbnails: list[bytes | None]
    failures: list[tuple[int, str]]  # rows of the files given


def _embed_for_check(
    files: list[ImageFile],
    encoder: Encoder,
    workers: int | None,
    max_pixels: int,
) -> _CheckBatch:
    dim = encoder.spec.embedding_dim or 0
    rows: list[int] = []
    parts: list[np.ndarray] = [np.empty((0, dim), np.float16)]
    digests: list[str] = []
    infos: list[Any] = []
    thumbnails: list[bytes | None] = []
    failures: list[tuple[int, str]] = []
    for batch in embedded_batches(
        [file.path for file in files],
        encoder,
        workers=0 if len(files) < 16 else workers,  # a few uploads: no worker start-up cost
        max_pixels=max_pixels,
        thumbnail_size=THUMBNAIL_SIZE,
        digests=True,
    ):
        rows += batch.rows
        parts.append(batch.embeddings)
        digests += [digest or "" for digest in batch.digests]
        infos += batch.infos
        thumbnails += batch.thumbnails
        failures += batch.failures
    return _CheckBatch(
        files=[files[row] for row in rows],
        embeddings=np.concatenate(parts),
        digests=digests,
        infos=infos,
        thumbnails=thumbnails,
        failures=failures,
    )


def _judge(
    store: Catalog,
    batch: _CheckBatch,
    *,
    threshold: float,
    top: int,
    verifying: bool,
    encoder: Encoder,
    workers: int | None,
    max_pixels: int,
) -> list[CheckResult]:
    count = len(batch.files)
    if not count:
        return []
    # Candidates: (query row, stored file id or -1 - earlier query row, score, exact).
    candidates: list[list[tuple[int, float, bool]]] = [[] for _ in range(count)]
    with store.reading():
        exact = store.files_with_digests(batch.digests)
        if store.model is not None and store.counts()["images"]:
            # The saved index, when current, is loaded without reading every stored row.
            index = store.search_index(None, SearchSettings())
            scores, ids = index.knn(batch.embeddings.astype(np.float32), top + 8)
            for row in range(count):
                for file_id, score in zip(ids[row].tolist(), scores[row].tolist(), strict=True):
                    if file_id >= 0:
                        candidates[row].append((file_id, float(score), False))
    for row, digest in enumerate(batch.digests):
        for file_id, _ in exact.get(digest, []):
            candidates[row].append((file_id, 1.0, True))
    earlier = find_pairs(batch.embeddings.astype(np.float32), threshold)
    for left, right, score in zip(
        earlier.left.tolist(), earlier.right.tolist(), earlier.score.tolist(), strict=True
    ):
        same = batch.digests[left] == batch.digests[right]
        candidates[right].append((-1 - left, 1.0 if same else float(score), same))
    for row in range(count):
        for other in range(row):
            if batch.digests[other] == batch.digests[row] and not any(
                c[0] == -1 - other for c in candidates[row]
            ):
                candidates[row].append((-1 - other, 1.0, True))
        # Best first; one entry per match (an exact hit may also come from the k-NN search).
        best: dict[int, tuple[int, float, bool]] = {}
        for candidate in sorted(candidates[row], key=lambda c: (not c[2], -c[1], c[0])):
            best.setdefault(candidate[0], candidate)
        candidates[row] = list(best.values())

    stored_ids = {c[0] for row in candidates for c in row if c[0] >= 0}
    paths = store.paths_of(stored_ids)
    verdicts = _verify_candidates(
        store,
        batch,
        candidates,
        paths,
        threshold=threshold,
        verifying=verifying,
        encoder=encoder,
        workers=workers,
        max_pixels=max_pixels,
    )
    results: list[CheckResult] = []
    for row in range(count):
        matches: list[Match] = []
        for match_id, score, is_exact in candidates[row]:
            in_check = match_id < 0
            if in_check and results[-1 - match_id].verdict != "new":
                continue  # an earlier duplicate is not stored, so it is not a match here
            verdict = verdicts.get((row, match_id))
            duplicate = is_exact or (
                score >= threshold and (verdict.accepted if verdict else not verifying)
            )
            matches.append(
                Match(
                    path=batch.files[-1 - match_id].path if in_check else paths[match_id],
                    score=score,
                    exact=is_exact,
                    duplicate=duplicate,
                    verification=verdict,
                    earlier_in_check=in_check,
                )
            )
        matches.sort(key=lambda m: (not m.duplicate, not m.exact, -m.score, m.path))
        shown = tuple(matches[:top])
        verdict_word = "duplicate" if any(m.duplicate for m in matches) else "new"
        results.append(CheckResult(batch.files[row].path, verdict_word, shown))
    return results


def _verify_candidates(
    store: Catalog,
    batch: _CheckBatch,
    candidates: list[list[tuple[int, float, bool]]],
    paths: dict[int, str],
    *,
    threshold: float,
    verifying: bool,
    encoder: Encoder,
    workers: int | None,
    max_pixels: int,
) -> dict[tuple[int, int], Verdict]:
    """Verdicts for every non-exact candidate at or above the threshold, keyed (row, match)."""
    if not verifying:
        return {}
    wanted = [
        (row, match_id, score)
        for row, row_candidates in enumerate(candidates)
        for match_id, score, is_exact in row_candidates
        if not is_exact and score >= threshold
    ]
    if not wanted:
        return {}
    count = len(batch.files)
    stored_rows: dict[int, int] = {}
    for _, match_id, _ in wanted:
        if match_id >= 0:
            stored_rows.setdefault(match_id, count + len(stored_rows))
    verifier_paths = [file.path for file in batch.files] + list(
        paths[match_id] for match_id in stored_rows
    )
    thumbnails = list(batch.thumbnails) + [store.thumbnail(match_id) for match_id in stored_rows]
    verifier = Verifier(
        verifier_paths,
        thumbnails=thumbnails,
        device=encoder.device,
        workers=workers,
        max_pixels=max_pixels,
    )
    lefts, rights, scores = [], [], []
    for row, match_id, score in wanted:
        other = stored_rows[match_id] if match_id >= 0 else -1 - match_id
        lefts.append(min(row, other))
        rights.append(max(row, other))
        scores.append(score)
    checked = verifier.check(
        Pairs(np.array(lefts), np.array(rights), np.array(scores, dtype=np.float32))
    )
    return {(row, match_id): v for (row, match_id, _), v in zip(wanted, checked, strict=True)}


def _add_new(
    store: Catalog,
    judged: list[CheckResult],
    batch: _CheckBatch,
    encoder: Encoder,
    paths: Sequence[str],
) -> list[CheckResult]:
    new_rows = [row for row, result in enumerate(judged) if result.verdict == "new"]
    if not new_rows:
        return judged
    run_id = store.begin_run("check", {"paths": [storage.absolute(p) for p in paths]})
    store.store(
        run_id,
        [
            StoredImage(
                batch.files[row], batch.digests[row], batch.infos[row], batch.thumbnails[row]
            )
            for row in new_rows
        ],
        batch.embeddings[new_rows],
    )
    store.search_index(None, SearchSettings(), gpu=gpu_number(encoder.device), save=True)
    store.tidy()
    store.finish_run(run_id, {"added": len(new_rows), "checked": len(judged)})
    added = set(new_rows)
    return [
        CheckResult(r.path, r.verdict, r.matches, r.error, added=row in added)
        for row, r in enumerate(judged)
    ]
