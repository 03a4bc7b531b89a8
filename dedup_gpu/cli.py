"""The `dedup-gpu` command line: scan, index, groups, check, review, audit, apply, undo, export,
models, demo, eval.

Every DedupError becomes one `error:` line plus a hint (exit status 2); anything unexpected
becomes one line too (exit status 1). --debug shows the full traceback instead.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import BadArgumentError, DedupError
from .group import KeepPolicy
from .records import VerifyMode
from .terminal import shown

app = typer.Typer(
    name="dedup-gpu",
    help="Find exact and near-duplicate images with deep embeddings (GPU or CPU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one message, one line, even in a narrow log


@contextmanager
def reported_errors(debug: bool) -> Iterator[None]:
    try:
        yield
    except DedupError as error:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {shown(error)}", highlight=False)
        if error.hint:
            err.print(f"[bold]hint:[/] {shown(error.hint)}", highlight=False)
        err.print("(rerun with --debug for the full traceback)", style="dim")
        raise typer.Exit(2) from None
    except sqlite3.DatabaseError as error:
        # A catalog read after it was opened: a locked or unreadable file is not a damaged one.
        if debug:
            raise
        damaged = type(error) is sqlite3.DatabaseError  # "database disk image is malformed"
        what = "a catalog is damaged" if damaged else "a catalog could not be read"
        err.print(f"[bold red]error:[/] {what}: {shown(error)}", highlight=False)
        err.print(
            "[bold]hint:[/] dedup-gpu catalog verify --catalog DIR says what is wrong"
            + ("; dedup-gpu catalog repair --catalog DIR mends it" if damaged else ""),
            highlight=False,
        )
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; no report was written")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {shown(error)}", highlight=False
        )
        err.print("rerun with --debug for the full traceback, and please report it", style="dim")
        raise typer.Exit(1) from None


DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Encoder name (see `dedup-gpu models`); default: the "
        "first SSCD model that runs here without a download.",
    ),
]
SearchKindOption = Annotated[
    str,
    typer.Option(
        "--index",
        help="Similarity search: exact, ivf (approximate, for millions of images) or auto "
        "(ivf from a size measured in docs/benchmarks.md).",
    ),
]
NprobeOption = Annotated[
    int | None,
    typer.Option(help="IVF lists searched per query (more: higher recall, slower)."),
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        help="Cosine score at or above which two "
        "images are duplicates; default: the model's calibrated value."
    ),
]
KeepOption = Annotated[
    KeepPolicy,
    typer.Option(
        help="Which copy of a group to keep: largest (most "
        "pixels, then bytes, then shortest path), oldest or newest."
    ),
]
VerifyOption = Annotated[
    VerifyMode,
    typer.Option(
        help="Re-check candidate pairs with keypoints and aligned comparison before grouping "
        "(auto: when OpenCV is installed)."
    ),
]
CatalogOption = Annotated[
    Path, typer.Option("--catalog", "-c", help="Catalog folder (created by `dedup-gpu index`).")
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Decoding worker processes (default: CPU count, at most 8).")
]
JsonOutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write the JSON report here.")
]
CsvOutOption = Annotated[Path | None, typer.Option("--csv", help="Write a CSV report here.")]
PathsArgument = Annotated[
    list[str] | None, typer.Argument(help="Image files and folders (searched recursively).")
]
FromListOption = Annotated[
    str | None,
    typer.Option(
        help="Text file of paths or URLs, one a line; or a .csv/.jsonl manifest with a path "
        "or URL column."
    ),
]
ImageColumnOption = Annotated[
    str | None,
    typer.Option(
        help="Parquet/Arrow tables: the column of image bytes (default: the only one). "
        "CSV/JSONL manifests: the column of paths or URLs (default: path, url, image...)."
    ),
]
NameColumnOption = Annotated[
    str | None,
    typer.Option(
        help="Parquet/Arrow tables: name each row by this column (default: file.parquet#ROW)."
    ),
]
WeightsOption = Annotated[str | None, typer.Option(help="Local weights file for the model.")]
BatchSizeOption = Annotated[int, typer.Option(help="Images per model batch.")]
MaxPixelsOption = Annotated[
    int, typer.Option(help="Skip images with more pixels than this (decompression-bomb guard).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or group list.")]
DebugOption = Annotated[bool, typer.Option(help="Show full tracebacks.")]
MAX_PIXELS = 178_956_970  # data.DEFAULT_MAX_PIXELS, spelled out so --help needs no torch import


def _check_output_path(path: Path | None, flag: str) -> None:
    """Refuse an unusable report path before the scan, not after an hour of embedding."""
    if path is None:
        return
    if path.is_dir():
        raise BadArgumentError(f"{flag} {path} is a folder; give a file name")
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadArgumentError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise BadArgumentError(f"{flag} {path}: cannot write in {existing}")


def _search_settings(kind: str, nprobe: int | None):
    """Checked here, before any work: an unknown --index or a bad --nprobe is refused at once."""
    from .index import SearchSettings

    return SearchSettings(kind=kind) if nprobe is None else SearchSettings(kind=kind, nprobe=nprobe)


def _announce_model(encoder, model: str | None, device: str) -> None:
    import torch

    spec = encoder.spec
    chosen = "" if model else " (default)"
    err.print(
        f"model: [bold]{spec.name}[/]{chosen} on {encoder.device}; {spec.description}",
        highlight=False,
    )
    if device == "auto" and encoder.device.type == "cpu" and torch.cuda.is_available():
        err.print(
            f"note: {spec.name} runs on the CPU because onnxruntime has no CUDA provider here; "
            "install onnxruntime-gpu or use --model sscd to run it on the GPU",
            highlight=False,
        )


def _run_scan(
    paths: list[str],
    *,
    from_list: str | None,
    model: str | None,
    weights: str | None,
    device: str,
    threshold: float | None,
    keep: str,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    quiet: bool,
    verify: str = "auto",
    against: list[str] | None = None,
    search=None,
    devices: str | None = None,
    decode: str = "auto",
    compile_model: bool = False,
    **sources_and_cluster,
):
    from .pipeline import decodes_on_device, open_encoders, scan

    encoders = open_encoders(
        model,
        device,
        devices=devices,
        weights=weights,
        progress=not quiet,
        compile_model=compile_model,
    )
    encoder = encoders[0]
    spec = encoder.spec
    _announce_model(encoder, model, device)
    if len(encoders) > 1:
        names = ", ".join(str(each.device) for each in encoders)
        err.print(f"devices: {names} (one batch each in turn)", highlight=False)
    if decodes_on_device(decode, encoder.device):
        err.print(f"decoding JPEGs on {encoder.device}", highlight=False)
    from .verify import resolve_mode

    verifying = resolve_mode(verify)
    if verify == "auto" and not verifying:
        err.print(
            "note: OpenCV is not installed, so pairs are not verified (--verify off); "
            "pip install opencv-python-headless to verify them",
            highlight=False,
        )
    if threshold is None:
        source = "calibrated" if spec.threshold_calibrated else "NOT calibrated for this model"
        if verifying and spec.screen_threshold is not None:
            err.print(
                f"threshold: pairs scoring {spec.screen_threshold} or more are verified "
                f"({source}; see {spec.card})",
                highlight=False,
            )
        else:
            err.print(
                f"threshold: {spec.default_threshold} ({source}; see {spec.card})",
                highlight=False,
            )
        if not spec.threshold_calibrated:
            err.print(
                "[yellow]warning:[/] check the threshold on your own images, or pass --threshold",
                highlight=False,
            )
    return scan(
        paths,
        from_list=from_list,
        threshold=threshold,
        keep=keep,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        progress=not quiet,
        encoder=encoders,
        verify=verify,
        against=against,
        search=search,
        decode=decode,
        **sources_and_cluster,
    )


def _finish(result, *, out_json: Path | None, out_csv: Path | None, show: int, quiet: bool) -> None:
    from .report import print_groups, summary_table, write_csv, write_json

    report = result.report
    if out_json is not None:
        write_json(report, str(out_json))
    if out_csv is not None:
        write_csv(report, str(out_csv))
    if not quiet:
        print_groups(report, out, limit=show)
    out.print(summary_table(report))
    for path in (out_json, out_csv):
        if path is not None:
            out.print(f"report written to {path}", highlight=False)


@app.command()
def scan(
    paths: PathsArgument = None,
    from_list: FromListOption = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    against: Annotated[
        list[str] | None,
        typer.Option(
            help="A second set (files or folders, repeatable): report only copies between it "
            "and PATHS, e.g. test images leaked into a training set."
        ),
    ] = None,
    threshold: ThresholdOption = None,
    keep: KeepOption = KeepPolicy.largest,
    out_json: JsonOutOption = None,
    out_csv: CsvOutOption = None,
    batch_size: BatchSizeOption = 64,
    workers: WorkersOption = None,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    show: Annotated[int, typer.Option(help="Groups to list on the terminal.")] = 10,
    verify: VerifyOption = VerifyMode.auto,
    index_kind: SearchKindOption = "auto",
    nprobe: NprobeOption = None,
    devices: Annotated[
        str | None,
        typer.Option(
            help="Embed on several GPUs at once: all, or a list such as 0,1 or cuda:0,cuda:2 "
            "(instead of --device)."
        ),
    ] = None,
    decode: Annotated[
        str,
        typer.Option(
            help="Where JPEGs are decoded: auto (on the GPU with nvJPEG when the model runs on "
            "one), cpu (worker processes), or device (where the model runs)."
        ),
    ] = "auto",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Compile the model with torch.compile (PyTorch models only; the first "
            "batches pay the compile time).",
        ),
    ] = False,
    image_column: ImageColumnOption = None,
    name_column: NameColumnOption = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Embed on a Ray cluster: its address (HOST:PORT, auto, or local for a cluster "
            "started on this machine).",
        ),
    ] = None,
    shard_dir: Annotated[
        str | None,
        typer.Option(
            help="With --ray: where workers write embedding shards, a folder every node sees "
            "or an object-store URL (s3://...)."
        ),
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option(help="With --ray: workers to start (default: one per GPU, else per node)."),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            help="Search k-means partitions of the embeddings separately (approximate; on the "
            "cluster with --ray) instead of one exact self-join."
        ),
    ] = None,
    overlap: Annotated[
        int, typer.Option(help="With --partitions: partitions each image is searched in.")
    ] = 2,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Find duplicate groups among images and write a report."""
    with reported_errors(debug):
        if not paths and not from_list:
            raise BadArgumentError("no images given", hint="dedup-gpu scan FOLDER [FOLDER...]")
        _check_output_path(out_json, "--out")
        _check_output_path(out_csv, "--csv")
        result = _run_scan(
            paths or [],
            outputs=[str(path) for path in (out_json, out_csv) if path is not None],
            from_list=from_list,
            model=model,
            weights=weights,
            device=device,
            threshold=threshold,
            keep=keep.value,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            quiet=quiet,
            verify=verify.value,
            against=against,
            search=_search_settings(index_kind, nprobe),
            devices=devices,
            decode=decode,
            compile_model=compile_model,
            image_column=image_column,
            name_column=name_column,
            ray_address=ray,
            shard_dir=shard_dir,
            ray_workers=ray_workers,
            partitions=partitions,
            overlap=overlap,
        )
        _finish(result, out_json=out_json, out_csv=out_csv, show=show, quiet=quiet)


@app.command("index")
def index_command(
    catalog: CatalogOption,
    paths: PathsArgument = None,
    from_list: FromListOption = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 64,
    workers: WorkersOption = None,
    max_pixels: MaxPixelsOption = MAX_PIXELS,
    thumbnails: Annotated[
        bool,
        typer.Option(
            help="Keep the ~15 KB thumbnail verification compares, so `groups` never decodes "
            "the images again."
        ),
    ] = True,
    index_kind: SearchKindOption = "auto",
    nprobe: NprobeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
    image_column: ImageColumnOption = None,
    name_column: NameColumnOption = None,
    forget_missing: Annotated[
        bool,
        typer.Option(
            help="A path given that is gone (moved, deleted for good): forget its catalogued "
            "images instead of stopping with an error."
        ),
    ] = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Add images to a catalog: embed only new or changed files, forget deleted ones."""
    from .ingest import index_catalog

    with reported_errors(debug):
        if not paths and not from_list:
            raise BadArgumentError(
                "no images given", hint="dedup-gpu index FOLDER [FOLDER...] --catalog DIR"
            )
        run = index_catalog(
            paths or [],
            catalog,
            from_list=from_list,
            model=model,
            weights=weights,
            device=device,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            thumbnails=thumbnails,
            search=_search_settings(index_kind, nprobe),
            progress=not quiet,
            image_column=image_column,
            name_column=name_column,
            forget_missing=forget_missing,
        )
        if as_json:
            out.print_json(json.dumps(run.to_dict()))
            return
        if not quiet:
            for error in run.errors[:10]:
                out.print(
                    f"[yellow]skipped[/] {shown(error.path)}: {shown(error.reason)}",
                    highlight=False,
                    soft_wrap=True,
                )
            if len(run.errors) > 10:
                out.print(f"... and {len(run.errors) - 10} more skipped files")
        table = Table(title=f"catalog {catalog} ({run.model})", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        embedded = run.added + run.changed + run.repaired - run.failed
        rate = embedded / run.seconds if run.seconds else 0.0
        for label, value in (
            ("new images", run.added),
            ("changed (embedded again)", run.changed),
            *([("lost embeddings (embedded again)", run.repaired)] if run.repaired else []),
            ("deleted (forgotten)", run.forgotten),
            ("unchanged (not read)", run.unchanged),
            ("skipped with errors", run.failed),
            ("images in the catalog", run.images),
        ):
            table.add_row(label, f"{value:,}")
        search = run.search.get("kind", "none")
        if search == "ivf":
            search += f" ({run.search.get('nlist')} lists, nprobe {run.search.get('nprobe')})"
        table.add_row("search index", search)
        table.add_row("time", f"{run.seconds:.1f} s ({rate:,.1f} images/s embedded)")
        out.print(table)


catalog_app = typer.Typer(
    help="Look after a catalog: verify that nothing is lost, repair what is.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("verify")
def catalog_verify_command(
    catalog: CatalogOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    debug: DebugOption = False,
) -> None:
    """Check the database, every shard's length and digest and the saved index; change nothing.

    Exit 0 when all is well, 1 when something is wrong (each finding on a line).

    Example: dedup-gpu catalog verify --catalog ~/photos.catalog
    """
    from .catalog_repair import verify_catalog

    with reported_errors(debug):
        health = verify_catalog(catalog)
        problems = health.problems
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "catalog": str(catalog),
                        "healthy": not problems,
                        "problems": problems,
                        "unchecked_shards": health.unchecked_shards,
                    }
                )
            )
        else:
            for problem in problems:
                out.print(f"[red]problem[/] {shown(problem)}", highlight=False, soft_wrap=True)
            if health.unchecked_shards:
                out.print(
                    f"{health.unchecked_shards} shard(s) from before digests were recorded: "
                    "their lengths were checked, not their bytes",
                    highlight=False,
                )
            if problems:
                out.print(
                    f"catalog {shown(str(catalog))}: {len(problems)} problem(s); mend with: "
                    f"dedup-gpu catalog repair --catalog {shown(str(catalog))}",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                out.print(f"catalog {shown(str(catalog))}: healthy", highlight=False)
    if problems:
        raise typer.Exit(1)


@catalog_app.command("repair")
def catalog_repair_command(
    catalog: CatalogOption,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 64,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Rebuild a damaged database from what can be read, and embed lost embeddings again.

    The damaged database is kept beside the new one (catalog.db.damaged-TIME). Exit 1 when some
    lost image could not be read again (named, left for a later repair).

    Example: dedup-gpu catalog repair --catalog ~/photos.catalog
    """
    from .catalog_repair import repair_catalog

    with reported_errors(debug):
        repair = repair_catalog(
            catalog,
            device=device,
            weights=weights,
            batch_size=batch_size,
            workers=workers,
            progress=not quiet,
        )
        if repair.salvage is not None:
            salvage = repair.salvage
            kept = ", ".join(f"{n:,} {table}" for table, n in salvage.kept.items()) or "nothing"
            out.print(
                f"the database was damaged: rebuilt from the rows that could be read ({kept}); "
                f"the damaged file is kept as {shown(salvage.damaged_copy)}",
                highlight=False,
                soft_wrap=True,
            )
            whole = salvage.unreadable_tables
            lost = {t: n for t, n in salvage.lost.items() if n and t not in whole}
            if lost or whole:
                files_lost = "files" in lost or "files" in whole
                out.print(
                    "[yellow]could not be read:[/] "
                    + ", ".join(
                        [f"up to {n:,} {table} row(s)" for table, n in lost.items()]
                        + [f"all of {table}" for table in whole]
                    )
                    + (
                        "; the images whose rows were lost are added back by the next index "
                        "of their folders"
                        if files_lost
                        else ""
                    ),
                    highlight=False,
                    soft_wrap=True,
                )
            if salvage.model_lost:
                out.print(
                    "[yellow]the model record was lost[/]: no embedding can be trusted; "
                    f"index your folders again into {shown(str(catalog))}",
                    highlight=False,
                    soft_wrap=True,
                )
        if repair.run is not None:
            for error in repair.run.errors[:10]:
                out.print(
                    f"[yellow]skipped[/] {shown(error.path)}: {shown(error.reason)}",
                    highlight=False,
                    soft_wrap=True,
                )
        for error in repair.unreadable:
            out.print(
                f"[red]still lost[/] {shown(error.path)}: {shown(error.reason)}",
                highlight=False,
                soft_wrap=True,
            )
        embedded = (repair.run.repaired - repair.run.failed) if repair.run else 0
        out.print(
            f"catalog {shown(str(catalog))}: {repair.lost} lost embedding(s), {embedded} "
            f"embedded again, {len(repair.unreadable)} still lost ({repair.seconds:.1f} s)",
            highlight=False,
            soft_wrap=True,
        )
    if repair.unreadable:
        raise typer.Exit(1)


@app.command("groups")
def groups_command(
    catalog: CatalogOption,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Another catalog (same model): report only copies between the two catalogs."
        ),
    ] = None,
    threshold: ThresholdOption = None,
    keep: KeepOption = KeepPolicy.largest,
    out_json: JsonOutOption = None,
    out_csv: CsvOutOption = None,
    verify: VerifyOption = VerifyMode.auto,
    index_kind: SearchKindOption = "auto",
    nprobe: NprobeOption = None,
    device: DeviceOption = "auto",
    workers: WorkersOption = None,
    show: Annotated[int, typer.Option(help="Groups to list on the terminal.")] = 10,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """The duplicate report for a catalog, from its stored embeddings (no image is embedded)."""
    from .pipeline import groups_from_catalog

    with reported_errors(debug):
        _check_output_path(out_json, "--out")
        _check_output_path(out_csv, "--csv")
        result = groups_from_catalog(
            catalog,
            outputs=[str(path) for path in (out_json, out_csv) if path is not None],
            against=against,
            threshold=threshold,
            keep=keep.value,
            verify=verify.value,
            search=_search_settings(index_kind, nprobe),
            device=device,
            workers=workers,
            progress=not quiet,
        )
        _finish(result, out_json=out_json, out_csv=out_csv, show=show, quiet=quiet)


# `check` exit statuses, for ingest scripts: 0 every image is new, 1 at least one duplicate,
# 3 no duplicate but some image could not be read (2 is every other error, as elsewhere).
EXIT_DUPLICATE = 1
EXIT_UNREADABLE = 3


@app.command("check")
def check_command(
    files: Annotated[list[str], typer.Argument(help="Images to check against the catalog.")],
    catalog: CatalogOption,
    add: Annotated[
        bool, typer.Option(help="Store the images found to be new in the catalog.")
    ] = False,
    create: Annotated[
        bool,
        typer.Option(
            help="With --add: create the catalog if there is none (else a mistyped --catalog "
            "is an error, not a new empty catalog)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per image on stdout (JSON lines).")
    ] = False,
    threshold: ThresholdOption = None,
    top: Annotated[int, typer.Option(help="Best matches to list for each image.")] = 3,
    verify: VerifyOption = VerifyMode.auto,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    image_column: ImageColumnOption = None,
    name_column: NameColumnOption = None,
    debug: DebugOption = False,
) -> None:
    """Is each image a copy of one already in the catalog? Exit status 1 if any is."""
    from .ingest import check_images

    with reported_errors(debug):
        results = check_images(
            files,
            catalog,
            add=add,
            create=create,
            threshold=threshold,
            verify=verify.value,
            top=top,
            model=model,
            weights=weights,
            device=device,
            image_column=image_column,
            name_column=name_column,
        )
        for result in results:
            if as_json:
                print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
                continue
            if result.verdict == "error":
                out.print(
                    f"[yellow]error[/]      {shown(result.path)}: {shown(result.error)}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            added = " (added)" if result.added else ""
            word = "[red]duplicate[/]" if result.verdict == "duplicate" else "[green]new[/]      "
            out.print(f"{word}  {shown(result.path)}{added}", highlight=False, soft_wrap=True)
            for match in result.matches:
                kind = "exact" if match.exact else f"{match.score:.3f}"
                mark = "copy of" if match.duplicate else "like   "
                note = f" ({shown(match.verification.reason)})" if match.verification else ""
                out.print(
                    f"    {mark} {kind:>6}  {shown(match.path)}{note}",
                    highlight=False,
                    soft_wrap=True,
                )
    if any(result.verdict == "duplicate" for result in results):
        raise typer.Exit(EXIT_DUPLICATE)
    if any(result.verdict == "error" for result in results):
        raise typer.Exit(EXIT_UNREADABLE)


ReportArgument = Annotated[str, typer.Argument(help="A report.json written by scan or groups.")]
DecisionsOption = Annotated[
    str | None,
    typer.Option(help="Reviewer decisions exported from the review page: only what they remove."),
]
AllowOutsideRootsOption = Annotated[
    bool,
    typer.Option(
        "--allow-outside-roots",
        help="Also act on paths outside the folders that were scanned (recorded in the report "
        "and journal); a path with a '..' step inside it is refused even so.",
    ),
]


@app.command("apply")
def apply_command(
    report_path: ReportArgument,
    action: Annotated[
        str, typer.Option(help="move (to --to), hardlink, symlink (exact copies) or delete.")
    ],
    to: Annotated[str | None, typer.Option(help="Folder to move duplicates into.")] = None,
    decisions: DecisionsOption = None,
    journal: Annotated[
        str | None,
        typer.Option(help="Journal to write (JSON lines); default: beside the report."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Act; without it, a dry run.")] = False,
    allow_outside_roots: AllowOutsideRootsOption = False,
    debug: DebugOption = False,
) -> None:
    """Move, link or delete the report's duplicates: a dry run unless --yes; undo with `undo`."""
    from .actions import Action, apply_report, plan_changes
    from .report import human_bytes, read_report

    with reported_errors(debug):
        report = read_report(report_path)
        decided = _read_decisions(decisions, report)
        remove = decided.remove if decided else None
        if action == Action.delete.value and yes and journal is None:
            plan_changes(  # bad arguments first
                report, action, to=to, remove=remove, allow_outside_roots=allow_outside_roots
            )
            raise BadArgumentError(
                "--action delete needs --journal FILE as well as --yes",
                hint="name the journal that records what was deleted (undo reads it)",
            )
        result = apply_report(
            report,
            action,
            to=to,
            remove=remove,
            journal=journal,
            yes=yes,
            allow_outside_roots=allow_outside_roots,
        )
        verb = {"move": "move", "hardlink": "hard-link", "symlink": "symlink", "delete": "delete"}
        changes = result.planned if result.dry_run else result.done
        for change in changes:
            arrow = f" -> {shown(change.target)}" if change.target else ""
            link = f" -> {shown(change.keep)}" if change.action in ("hardlink", "symlink") else ""
            prefix = "would " if result.dry_run else ""
            out.print(
                f"{prefix}{verb[change.action]} {shown(change.path)}{arrow}{link}",
                highlight=False,
                soft_wrap=True,
            )
        for path, reason in result.skipped:
            out.print(
                f"[yellow]skipped[/] {shown(path)}: {shown(reason)}",
                highlight=False,
                soft_wrap=True,
            )
        missing = [
            path
            for path, reason in result.skipped
            if reason == "it no longer exists" or reason.startswith("it lies outside the folders")
        ]
        relative = any(not os.path.isabs(group.keep.path) for group in report.groups)
        if missing and not changes and relative:
            err.print(
                "[bold]hint:[/] the report's paths are relative to the folder scan ran in; "
                "run apply from that folder",
                highlight=False,
            )
        for_good = sum(c.action == "delete" and not c.exact for c in changes)
        if for_good:
            out.print(
                f"[bold yellow]note:[/] {for_good} near-duplicate(s) "
                f"{'would be' if result.dry_run else 'were'} deleted for good: their bytes exist "
                "nowhere else, so undo cannot bring them back (--action move keeps a way back)",
                highlight=False,
                soft_wrap=True,
            )
        freed = human_bytes(sum(change.bytes for change in changes))
        if result.dry_run:
            out.print(
                f"dry run: {len(changes)} file(s) would be changed ({freed}), "
                f"{len(result.skipped)} skipped; nothing was touched. Add --yes to act.",
                highlight=False,
            )
        else:
            out.print(
                f"{len(changes)} file(s) changed ({freed}), {len(result.skipped)} skipped; "
                f"journal: {result.journal} (undo with: dedup-gpu undo {result.journal})",
                highlight=False,
                soft_wrap=True,
            )


def _read_decisions(decisions: str | None, report):
    """The reviewer's decisions (None without a file), each ignored entry reported on a line."""
    if decisions is None:
        return None
    from .export import read_decisions

    decided = read_decisions(decisions, report)
    for path, reason in decided.ignored:
        err.print(
            f"ignored in {shown(decisions)}: {shown(path)}: {shown(reason)}",
            highlight=False,
            soft_wrap=True,
        )
    return decided


@app.command("undo")
def undo_command(
    journal: Annotated[str, typer.Argument(help="The journal apply wrote.")],
    allow_outside_roots: AllowOutsideRootsOption = False,
    debug: DebugOption = False,
) -> None:
    """Put back every file an apply changed, byte for byte, even after a crash mid-way."""
    from .actions import undo_journal

    with reported_errors(debug):
        result = undo_journal(journal, allow_outside_roots=allow_outside_roots)
        for path in result.restored:
            out.print(f"restored {shown(path)}", highlight=False, soft_wrap=True)
        for path, reason in result.failed:
            out.print(
                f"[red]not restored[/] {shown(path)}: {shown(reason)}",
                highlight=False,
                soft_wrap=True,
            )
        out.print(
            f"{len(result.restored)} restored, {len(result.already_in_place)} already in place, "
            f"{len(result.failed)} could not be restored",
            highlight=False,
        )
    if result.failed:
        raise typer.Exit(1)


@app.command("review")
def review_command(
    report_path: ReportArgument,
    html: Annotated[str, typer.Option(help="The page to write; thumbnails go in <name>_files/.")],
    page_size: Annotated[int, typer.Option(help="Groups shown per page.")] = 50,
    thumbnail_px: Annotated[int, typer.Option(help="Longest side of each thumbnail.")] = 160,
    image_column: ImageColumnOption = None,
    name_column: NameColumnOption = None,
    debug: DebugOption = False,
) -> None:
    """Write an HTML page to review each group, un-tick copies to keep, export decisions."""
    from . import storage
    from .report import read_report
    from .review import write_review

    with reported_errors(debug):
        # Rows of tables in the report are read back as the scan named them.
        storage.configure(image_column=image_column, name_column=name_column)
        page = write_review(
            read_report(report_path), html, page_size=page_size, thumbnail_px=thumbnail_px
        )
        for path, reason in page.unreadable[:10]:
            out.print(
                f"[yellow]no thumbnail[/] {shown(path)}: {shown(reason)}",
                highlight=False,
                soft_wrap=True,
            )
        if len(page.unreadable) > 10:
            out.print(f"... and {len(page.unreadable) - 10} more without a thumbnail")
        out.print(
            f"{page.groups} groups, {page.files} files, {page.thumbnails_written} thumbnails; "
            f"open {page.html_path}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("audit")
def audit_command(
    report_path: ReportArgument,
    price_per_gb_month: Annotated[
        float | None,
        typer.Option(help="Storage price per GB (10^9 bytes) and month: adds the yearly cost."),
    ] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 code for the price.")] = "USD",
    as_json: Annotated[
        str | None,
        typer.Option("--json", help="Also write the audit as JSON to FILE (- for stdout)."),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """What the duplicates cost: counts and reclaimable bytes by folder and format."""
    from .audit import audit_report, print_audit
    from .report import read_report

    with reported_errors(debug):
        report = read_report(report_path)
        if as_json:
            from .output_guard import refuse_overwriting_inputs

            refuse_overwriting_inputs([as_json], [(report.path, None), *report.images()])
        audit = audit_report(report, price_per_gb_month=price_per_gb_month, currency=currency)
        if as_json == "-":
            print(json.dumps(audit.to_dict(), indent=2, ensure_ascii=False))
            return
        print_audit(audit, out)
        if as_json:
            _write_json_file(as_json, audit.to_dict())
            out.print(f"written: {as_json}", highlight=False)


def _write_json_file(path: str, data: dict) -> None:
    from .atomic import write_text

    write_text(path, lambda handle: json.dump(data, handle, indent=2, ensure_ascii=False))


@app.command("export")
def export_command(
    report_path: ReportArgument,
    keep_list: Annotated[
        str | None, typer.Option(help="Write the paths to keep, one a line.")
    ] = None,
    remove_list: Annotated[
        str | None, typer.Option(help="Write the duplicates to remove, one a line.")
    ] = None,
    csv_path: Annotated[
        str | None, typer.Option("--csv", help="Write one row per file in a group (CSV).")
    ] = None,
    parquet_path: Annotated[
        str | None, typer.Option("--parquet", help="The same rows as Parquet (needs pyarrow).")
    ] = None,
    decisions: DecisionsOption = None,
    debug: DebugOption = False,
) -> None:
    """Keep and remove lists (text, CSV, Parquet) for training pipelines and other tools."""
    from .export import export_lists
    from .report import read_report

    with reported_errors(debug):
        report = read_report(report_path)
        decided = _read_decisions(decisions, report)
        result = export_lists(
            report,
            keep_list=keep_list,
            remove_list=remove_list,
            csv_path=csv_path,
            parquet_path=parquet_path,
            decisions=decided,
        )
        for path, reason in result.skipped:
            err.print(
                f"[yellow]not listed[/] {shown(repr(path))}: {shown(reason)}",
                highlight=False,
                soft_wrap=True,
            )
        out.print(
            f"{result.keep_listed} to keep, {result.remove_listed} to remove; written: "
            + ", ".join(result.written),
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    debug: DebugOption = False,
) -> None:
    """List every encoder: weights available here, licence, default threshold."""
    from .encoders import availability, default_model, list_encoders

    with reported_errors(debug):
        default = default_model()
        rows = []
        for spec in list_encoders():
            problem = availability(spec)
            rows.append(
                {
                    "name": spec.name,
                    "default": spec.name == default,
                    "available": problem is None,
                    "status": "ready" if problem is None else problem,
                    "input_size": spec.input_size,
                    "embedding_dim": spec.embedding_dim,
                    "default_threshold": spec.default_threshold,
                    "threshold_calibrated": spec.threshold_calibrated,
                    "licence": spec.licence,
                    "card": spec.card,
                }
            )
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table(title="dedup-gpu encoders")
        for column in ("model", "weights here", "threshold", "input", "licence"):
            table.add_column(column, overflow="fold")
        for row in rows:
            name = row["name"] + (" (default)" if row["default"] else "")
            ready = "[green]ready[/]" if row["available"] else f"[yellow]{row['status']}[/]"
            mark = "" if row["threshold_calibrated"] else " (uncalibrated)"
            table.add_row(
                name,
                ready,
                f"{row['default_threshold']}{mark}",
                str(row["input_size"]),
                row["licence"],
            )
        out.print(table)
        out.print(
            "Also: clip:<open_clip model>[:<pretrained tag or checkpoint>] and "
            "torchvision:<classifier name>. Model cards: models/*.md",
            highlight=False,
        )


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where to build the demo images.")] = Path(
        "dedup-gpu-demo"
    ),
    model: ModelOption = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Build a folder of real photos with edited copies, scan it, and check the result."""
    from .data import DEFAULT_MAX_PIXELS
    from .demo import DEMO_PHOTOS, build_demo_folder, score_demo

    with reported_errors(debug):
        build_demo_folder(folder)
        err.print(
            f"demo folder: {folder} ({len(DEMO_PHOTOS)} photos from scikit-image, one "
            "edited copy each for crop, colour, greyscale, JPEG, resize, mirror and caption; "
            "an exact copy; two broken files)",
            highlight=False,
        )
        result = _run_scan(
            [str(folder)],
            from_list=None,
            model=model,
            weights=None,
            device=device,
            threshold=None,
            keep="largest",
            batch_size=32,
            workers=None,
            max_pixels=DEFAULT_MAX_PIXELS,
            quiet=quiet,
        )
        report_path = folder / "report.json"
        _finish(result, out_json=report_path, out_csv=None, show=30, quiet=quiet)
        score = score_demo(result.report, folder)
        out.print(
            f"edited copies joined to their original: {score.joined}/{score.copies}; "
            f"pairs joining different photos: {score.wrong_pairs}",
            highlight=False,
        )


@app.command("eval")
def eval_command(
    originals: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of distinct original images (no copies among them); not with --benchmark."
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Encoder to evaluate (repeatable); default: every encoder available here.",
        ),
    ] = None,
    benchmark: Annotated[
        Path | None,
        typer.Option(
            "--benchmark",
            help="Reuse a benchmark folder built earlier (OUT/benchmark, with labels.json) "
            "instead of building one; its images are scored as they are.",
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the benchmark images and results.")
    ] = Path("dedup-gpu-eval"),
    seed: Annotated[int, typer.Option(help="Seed for the edited copies and look-alikes.")] = 0,
    baselines: Annotated[
        bool, typer.Option(help="Also run pHash, dHash and PDQ on the same images.")
    ] = True,
    lookalikes: Annotated[
        bool, typer.Option(help="Add look-alike documents and scenes as distractors.")
    ] = True,
    lookalike_size: Annotated[
        str,
        typer.Option(
            help="full (A4 pages, benchmark) or tiny (quick checks); sizes the look-alikes, "
            "plain pictures and documents."
        ),
    ] = "full",
    plain: Annotated[
        bool,
        typer.Option(
            help="Add plain pictures (gradients, flat designs, objects on white, short notes, "
            "planets) with their copies, and plain distractors unless --no-lookalikes."
        ),
    ] = True,
    documents: Annotated[
        bool,
        typer.Option(
            help="Add receipts, invoices, ID cards, letters and lab reports: records that "
            "differ in a date and an amount, each rescanned, photographed and faxed."
        ),
    ] = True,
    calibrate: Annotated[
        bool,
        typer.Option(help="Find the threshold that meets --target-precision for each encoder."),
    ] = False,
    target_precision: Annotated[
        float, typer.Option(help="Pair precision that --calibrate aims for.")
    ] = 0.999,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Measure detection quality on a labelled benchmark built from ORIGINALS (or reused with
    --benchmark)."""
    from .evaluate import markdown, run_evaluation, write_outputs

    with reported_errors(debug):
        if originals is not None and benchmark is not None:
            raise BadArgumentError(
                "give ORIGINALS or --benchmark, not both",
                hint="--benchmark scores a benchmark built earlier as it is",
            )
        if originals is None and benchmark is None:
            raise BadArgumentError(
                "give a folder of originals to build a benchmark from, or --benchmark DIR"
            )
        if originals is not None and not originals.is_dir():
            raise BadArgumentError(f"{originals} is not a folder of images")
        if benchmark is not None and not benchmark.is_dir():
            raise BadArgumentError(f"{benchmark} is not a benchmark folder")
        evaluation = run_evaluation(
            originals,
            out_dir,
            benchmark_folder=benchmark,
            models=models or None,
            baselines=("phash", "dhash", "pdq") if baselines else (),
            seed=seed,
            lookalikes=lookalikes,
            lookalike_size=lookalike_size,
            plain=plain,
            documents=documents,
            device=device,
            target_precision=target_precision if calibrate else None,
            progress=not quiet,
        )
        written = write_outputs(evaluation, out_dir)
        out.print(markdown(evaluation), highlight=False, soft_wrap=True)
        for path in written.values():
            out.print(f"written: {path}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
