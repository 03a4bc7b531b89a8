"""A self-contained HTML page for reviewing a saved report before anything is deleted.

`write_review` writes one HTML file plus a folder of small JPEG thumbnails beside it
(`review.html` -> `review_files/`). The page shows each group side by side, sorts, filters and
pages through them in the browser, and lets a reviewer untick duplicates that must stay; its
"Export decisions" button downloads `decisions.json` in the format `decisions_for` builds, which
`dedup-gpu apply --decisions` reads.

The report's data travels inside one `<script type="application/json">` element and the page
builds its DOM with `textContent` and `setAttribute` only, so a file name such as
`<img src=x onerror=alert(1)>.jpg` is shown as text and never parsed as markup. A
Content-Security-Policy that admits only the page's own script (by hash) backs this up.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .atomic import write_bytes
from .errors import BadArgumentError, OutputError, first_line
from .output_guard import refuse_overwriting_inputs
from .redact import redacted_urls
from .report import ReportedFile, SavedReport
from .storage import StorageError, is_local, read_bytes
from .terminal import escaped

DECISIONS_FORMAT = "dedup-gpu-decisions"
DECISIONS_VERSION = 1

# Pillow's own hard limit; a preview is not worth decoding anything larger.
_MAX_PREVIEW_PIXELS = 178_956_970
_THUMBNAIL_QUALITY = 85
_MARKER = ".dedup-gpu-review"  # marks a thumbnails folder as ours, so a rerun may replace it
_THUMBNAIL_NAME = re.compile(r"^[0-9a-f]{24}\.jpg$")


@dataclass(frozen=True)
class ReviewPage:
    """What `write_review` wrote."""

    html_path: str
    thumbnails_dir: str
    groups: int
    files: int  # kept copies plus duplicates
    thumbnails_written: int
    unreadable: list[tuple[str, str]]  # (path, one-line reason) of images shown as placeholders


def decisions_for(report: SavedReport, unticked: AbstractSet[str]) -> dict[str, Any]:
    """The decisions a reviewer exports from the page, for a report and the duplicate paths the
    reviewer unticked (kept after all): every other duplicate is to be removed. This is the
    exact JSON the page's "Export decisions" button downloads as decisions.json.

    Raises BadArgumentError when `unticked` names a path that is not a duplicate in the report
    (a kept copy has no checkbox, so it cannot be unticked)."""
    duplicates = {item.path for group in report.groups for item in group.duplicates}
    unknown = sorted(set(unticked) - duplicates)
    if unknown:
        raise BadArgumentError(
            f"{unknown[0]!r} is not a duplicate in {report.path}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
            hint="only duplicates can be kept by unticking; kept copies are never removed",
        )
    return {
        "format": DECISIONS_FORMAT,
        "version": DECISIONS_VERSION,
        "report": report.path,
        "report_created": report.created,
        "remove": sorted(duplicates - set(unticked)),
        "keep": sorted(duplicates & set(unticked)),
    }


def write_review(
    report: SavedReport, html_path: str, *, page_size: int = 50, thumbnail_px: int = 160
) -> ReviewPage:
    """Write a review page for `report` to `html_path`, with thumbnails (JPEG, EXIF-oriented,
    longest side `thumbnail_px`) in `<html stem>_files/` beside it; `page_size` groups are shown
    per page. An image that is missing or cannot be decoded gets a placeholder and is listed in
    the result's `unreadable`; it never stops the page.

    Only the HTML file and its own thumbnails folder are written, each file atomically. Raises
    BadArgumentError for a page size or thumbnail size out of range, and OutputError when the
    page cannot be written or would replace the report, one of its images, or a folder that
    dedup-gpu did not make."""
    if page_size < 1:
        raise BadArgumentError(f"page size must be at least 1 (got {page_size})")
    if not 16 <= thumbnail_px <= 1024:
        raise BadArgumentError(f"thumbnail size must be 16 to 1024 pixels (got {thumbnail_px})")
    html_path = os.path.abspath(html_path)
    folder = os.path.dirname(html_path)
    stem = os.path.splitext(os.path.basename(html_path))[0]
    thumbnails_dir = os.path.join(folder, f"{stem}_files")
    _check_targets(report, html_path, thumbnails_dir)

    paths = list(dict.fromkeys(_all_paths(report)))  # unique, in report order
    thumbnails, unreadable = _write_thumbnails(paths, thumbnails_dir, thumbnail_px)
    data = _page_data(report, thumbnails, dict(unreadable), f"{quote(stem)}_files/", page_size)
    data = redacted_urls(data)  # credentials in URLs are never written into the page
    write_bytes(html_path, _html(data).encode("utf-8", "backslashreplace"))
    return ReviewPage(
        html_path=html_path,
        thumbnails_dir=thumbnails_dir,
        groups=len(report.groups),
        files=sum(1 + len(group.duplicates) for group in report.groups),
        thumbnails_written=len(thumbnails),
        unreadable=unreadable,
    )


# Writing files


def _check_targets(report: SavedReport, html_path: str, thumbnails_dir: str) -> None:
    if os.path.isfile(html_path):
        # Compared by inode, so a symlink or a second name for the report or an image counts too.
        if report.path and _same_file(report.path, html_path):
            raise OutputError(
                f"refusing to write the review page over {html_path}: it is the report",
                hint="give --html a new file name such as review.html",
            )
        refuse_overwriting_inputs([html_path], report.images())
    if os.path.isdir(html_path):
        raise OutputError(f"cannot write {html_path}: it is a folder")
    if os.path.lexists(thumbnails_dir):
        if not os.path.isdir(thumbnails_dir) or os.path.islink(thumbnails_dir):
            raise OutputError(
                f"cannot write thumbnails to {thumbnails_dir}: something else has that name",
                hint="give the review page another name, or move that file",
            )
        entries = os.listdir(thumbnails_dir)
        if entries and _MARKER not in entries:
            raise OutputError(
                f"refusing to write thumbnails into {thumbnails_dir}: the folder was not made "
                "by dedup-gpu review",
                hint="give the review page another name, or move that folder",
            )


def _same_file(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _all_paths(report: SavedReport) -> Iterator[str]:
    for group in report.groups:
        yield group.keep.path
        for item in group.duplicates:
            yield item.path
    for pair in report.unverified:
        yield pair.path_a
        yield pair.path_b


def _thumbnail_name(path: str) -> str:
    # A hash, never the user's file name: names may hold anything, including markup and "../".
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".jpg"


def _write_thumbnails(
    paths: list[str], folder: str, size: int
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Thumbnails of `paths` into `folder`: path -> thumbnail file name for those written, and
    (path, reason) for those that could not be read, in the order of `paths`."""
    try:
        os.makedirs(folder, exist_ok=True)
        write_bytes(os.path.join(folder, _MARKER), b"thumbnails of a dedup-gpu review page\n")
    except OSError as error:
        raise OutputError(f"cannot write {folder}: {error.strerror or error}") from error

    def one(path: str) -> str | _Unreadable:
        try:
            thumbnail = _jpeg_thumbnail(path, size)
        except _Unreadable as error:
            return error
        name = _thumbnail_name(path)
        write_bytes(os.path.join(folder, name), thumbnail, durable=False)  # remade on rerun
        return name

    written: dict[str, str] = {}
    unreadable: list[tuple[str, str]] = []
    # Pillow releases the GIL while decoding and resizing, so threads give real parallelism.
    chunks = [paths[start : start + 64] for start in range(0, len(paths), 64)]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        # In chunks: one future per file costs more than opening a missing one.
        outcomes = (o for chunk in pool.map(lambda c: [one(p) for p in c], chunks) for o in chunk)
        for path, outcome in zip(paths, outcomes, strict=True):
            if isinstance(outcome, _Unreadable):
                unreadable.append((path, str(outcome)))
            else:
                written[path] = outcome
    _remove_stale(folder, set(written.values()))
    return written, unreadable


class _Unreadable(Exception):
    """An image that cannot be previewed; the message is the one-line reason."""


def _remove_stale(folder: str, current: set[str]) -> None:
    """Thumbnails an earlier run of the same page left behind (only files named like ours)."""
    for name in os.listdir(folder):
        if _THUMBNAIL_NAME.match(name) and name not in current:
            # A leftover thumbnail is harmless: the page no longer refers to it.
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _jpeg_thumbnail(path: str, size: int) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        # Objects, URLs and container members are fetched whole; local files are opened.
        source = path if is_local(path) else io.BytesIO(read_bytes(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.width * image.height > _MAX_PREVIEW_PIXELS:
                    raise _Unreadable(f"too large to preview ({image.width}x{image.height})")
                if image.format == "JPEG":
                    image.draft("RGB", (size * 2, size * 2))  # decode at a reduced DCT scale
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)
                image.load()
                oriented = ImageOps.exif_transpose(image)
                rgb = _rgb(oriented)
                rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
                buffer = io.BytesIO()
                rgb.save(buffer, "JPEG", quality=_THUMBNAIL_QUALITY)
                return buffer.getvalue()
    except _Unreadable:
        raise
    except StorageError as error:
        raise _Unreadable(f"missing: {error}" if error.missing else str(error)) from error
    except FileNotFoundError as error:
        raise _Unreadable("missing: no file at this path any more") from error
    except PermissionError as error:
        raise _Unreadable(f"cannot read the file: {error.strerror}") from error
    except IsADirectoryError as error:
        raise _Unreadable("not a file (a folder has this path now)") from error
    except UnidentifiedImageError as error:
        raise _Unreadable("not an image (unrecognised format)") from error
    except Image.DecompressionBombError as error:
        raise _Unreadable(f"too large to preview: {first_line(error)}") from error
    except Exception as error:  # Pillow reports damaged data through many types
        raise _Unreadable(f"cannot decode: {first_line(error)}") from error


def _rgb(image: Any) -> Any:
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda value: value / 256).convert("L").convert("RGB")
    return image.convert("RGB")


# The page


def _verification_text(verification: dict[str, Any] | None) -> str | None:
    if not verification:
        return None
    verdict = "accepted" if verification.get("accepted") else "rejected"
    method = verification.get("method") or "?"
    reason = verification.get("reason") or ""
    return f"{verdict} ({method})" + (f": {reason}" if reason else "")


def _shown_name(path: str) -> dict[str, str]:
    """ "d": the name as the page shows it, where that differs from the name itself ("p", which
    the decisions file must give back as it is): a control, separator or bidirectional
    character, or a byte that is not UTF-8, as its escape (`\\x0d`, `\\u202e`, `\\udcff`), as
    on the terminal."""
    display = escaped(path)
    return {"d": display} if display != path else {}


def _file_link(path: str) -> str:
    """ "file": the page makes a local file's file:// link from its name (short, for the common
    case); for a name that is not UTF-8, the whole link. Its bad bytes are lone surrogates, which
    the page's encodeURIComponent refuses (it threw, and no group was drawn at all), so they are
    percent-encoded here, as the bytes the file system holds."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file://" + quote(os.fsencode(path))
    return "file"


def _file_data(
    item: ReportedFile, thumbnails: dict[str, str], unreadable: dict[str, str]
) -> dict[str, Any]:
    # Short keys: a 10,000-group report carries some 30,000 of these.
    entry: dict[str, Any] = {"p": item.path, "b": item.bytes, "w": item.width, "h": item.height}
    entry.update(_shown_name(item.path))
    if item.path.startswith(("http://", "https://")):
        entry["o"] = item.path  # the original opens in the browser as it is
    elif is_local(item.path) and os.path.isabs(item.path):
        entry["o"] = _file_link(item.path)
    if item.path in thumbnails:
        entry["t"] = thumbnails[item.path]
    else:
        entry["e"] = escaped(unreadable.get(item.path, "no preview"))
    if not item.keep:
        entry["s"] = round(item.score, 4)
        if item.exact:
            entry["x"] = 1
        verification = _verification_text(item.verification)
        if verification:
            entry["v"] = verification
    return entry


def _pair_file(path: str, thumbnails: dict[str, str], unreadable: dict[str, str]) -> dict:
    entry: dict[str, Any] = {"p": path, **_shown_name(path)}
    if path.startswith(("http://", "https://")):
        entry["o"] = path
    elif is_local(path) and os.path.isabs(path):
        entry["o"] = _file_link(path)
    if path in thumbnails:
        entry["t"] = thumbnails[path]
    else:
        entry["e"] = escaped(unreadable.get(path, "no preview"))
    return entry


def _page_data(
    report: SavedReport,
    thumbnails: dict[str, str],
    unreadable: dict[str, str],
    thumbnails_url: str,
    page_size: int,
) -> dict[str, Any]:
    groups = [
        [_file_data(group.keep, thumbnails, unreadable)]
        + [_file_data(item, thumbnails, unreadable) for item in group.duplicates]
        for group in report.groups
    ]
    return {
        "report": report.path,
        "created": report.created,
        "model": report.model,
        "threshold": report.threshold,
        "pageSize": page_size,
        "thumbs": thumbnails_url,
        "format": DECISIONS_FORMAT,
        "version": DECISIONS_VERSION,
        "groups": groups,
        # Candidates too plain to verify: shown for a person to judge, in no decision.
        "unverified": [
            {
                "a": _pair_file(pair.path_a, thumbnails, unreadable),
                "b": _pair_file(pair.path_b, thumbnails, unreadable),
                "s": round(pair.score, 4),
                "v": pair.reason,
            }
            for pair in report.unverified
        ],
        # Python's sort order of the duplicate paths, so the page's decisions match
        # decisions_for to the byte (JavaScript compares UTF-16 units, Python code points).
        "order": _sorted_duplicate_indices(report),
    }


def _sorted_duplicate_indices(report: SavedReport) -> list[int]:
    """Flattened indices (report order) of the first occurrence of each duplicate path, sorted
    by path."""
    first: dict[str, int] = {}
    index = 0
    for group in report.groups:
        for item in group.duplicates:
            first.setdefault(item.path, index)
            index += 1
    return [first[path] for path in sorted(first)]


def _json_for_script(data: Any) -> str:
    # Inside <script> only "</script" (or "<!--") can end the element early; escaping every "<",
    # ">" and "&" as \u escapes makes that impossible and JSON.parse reads them back unchanged.
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html(data: dict[str, Any]) -> str:
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode()
    # Only the page's own script may run (by hash, so no inline event handler can), and nothing is
    # fetched but the thumbnails and the originals the reviewer opens.
    policy = (
        "default-src 'none'; img-src file: data: blob: 'self'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'"
    )
    return "".join(
        _lines(
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>dedup-gpu review</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            "<noscript><p>This review page needs JavaScript to show the groups.</p></noscript>",
            '<header id="summary"></header>',
            '<nav id="controls"></nav>',
            '<nav class="pager" id="pager-top"></nav>',
            '<main id="groups"></main>',
            '<nav class="pager" id="pager-bottom"></nav>',
            '<section id="unverified"></section>',
            '<pre id="decisions-json" class="hidden"></pre>',
            f'<script type="application/json" id="report-data">{_json_for_script(data)}</script>',
            f"<script>{_SCRIPT}</script>",
            "</body>",
            "</html>",
        )
    )


def _lines(*lines: str) -> Iterable[str]:
    for line in lines:
        yield line + "\n"


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222;
  background: #f6f6f6; }
header { margin: 1em 0; }
header h1 { font-size: 1.3em; margin: 0 0 .3em; }
.meta { color: #555; }
#controls, .pager { display: flex; flex-wrap: wrap; gap: .8em; align-items: center;
  margin: .6em 0; }
#controls input[type=number] { width: 5.5em; }
button { cursor: pointer; }
.group { background: #fff; border: 1px solid #ccc; border-radius: 6px; margin: 1em 0;
  padding: .6em .8em; }
.group h2 { font-size: 1em; margin: 0 0 .5em; }
.files { display: flex; flex-wrap: wrap; gap: .8em; align-items: flex-start; }
.file { margin: 0; width: 200px; border: 2px solid transparent; border-radius: 4px;
  padding: 4px; }
.file.keep { border-color: #2a8a3a; background: #eef8ef; }
.file.remove { border-color: #c0392b; background: #fdf0ee; }
.file.spared { border-color: #888; }
.thumb, .placeholder { width: 180px; height: 180px; object-fit: contain; display: flex;
  align-items: center; justify-content: center; background: #eee; }
.placeholder { color: #a33; font-size: .85em; text-align: center; padding: 6px;
  box-sizing: border-box; }
.badge { display: inline-block; font-weight: bold; padding: 0 .4em; border-radius: 3px; }
.keep .badge { background: #2a8a3a; color: #fff; }
.file .line { font-size: .85em; color: #444; overflow-wrap: anywhere; }
.file .path { font-family: ui-monospace, monospace; font-size: .8em; overflow-wrap: anywhere; }
.hidden { display: none; }
.empty { color: #555; font-style: italic; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const groups = data.groups;
  const duplicates = [];  // flattened, report order: [group index, file index]
  const info = groups.map(function (files, g) {
    let lowest = Infinity, reclaim = 0;
    for (let i = 1; i < files.length; i++) {
      files[i].n = duplicates.length;
      duplicates.push(files[i]);
      lowest = Math.min(lowest, files[i].s);
      reclaim += files[i].b;
    }
    return {index: g, lowest: files.length > 1 ? lowest : 1, reclaim: reclaim, size: files.length};
  });
  const unticked = new Set();  // duplicate paths the reviewer keeps
  let shown = info.slice();
  let page = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.setAttribute("class", cls);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function humanBytes(count) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    for (let i = 0; i < units.length; i++) {
      if (Math.abs(count) < 1000 || i === units.length - 1)
        return i === 0 ? count.toFixed(0) + " B" : count.toFixed(1) + " " + units[i];
      count /= 1000;
    }
  }
  function originalUrl(file) {
    // Set by the page's writer: only local files and web URLs can be opened; an object-store
    // key, a tar member or a table row cannot, and stays plain text.
    if (file.o === "file") return "file://" + file.p.split("/").map(encodeURIComponent).join("/");
    return file.o || null;
  }

  function decisions() {
    const remove = [], keep = [];
    for (const n of data.order) {
      const path = duplicates[n].p;
      (unticked.has(path) ? keep : remove).push(path);
    }
    return {format: data.format, version: data.version, report: data.report,
            report_created: data.created, remove: remove, keep: keep};
  }
  function decisionsText() { return JSON.stringify(decisions(), null, 2) + "\n"; }

  function updateDecisions() {
    document.getElementById("decisions-json").textContent = decisionsText();
    let count = 0, bytes = 0;
    for (const file of duplicates) {
      if (!unticked.has(file.p)) { count++; bytes += file.b; }
    }
    document.getElementById("tally").textContent =
      count + " of " + duplicates.length + " duplicates marked for removal (" +
      humanBytes(bytes) + "); " + unticked.size + " kept after review";
  }

  function exportDecisions() {
    const blob = new Blob([decisionsText()], {type: "application/json"});
    const link = document.createElement("a");
    link.setAttribute("href", URL.createObjectURL(blob));
    link.setAttribute("download", "decisions.json");
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }

  function renderFile(file, keep) {
    const figure = el("figure", "file");
    if (file.t) {
      const img = el("img", "thumb");
      img.setAttribute("loading", "lazy");
      img.setAttribute("alt", "");
      img.setAttribute("src", data.thumbs + file.t);
      figure.appendChild(img);
    } else {
      figure.appendChild(el("div", "placeholder", "no preview: " + file.e));
    }
    const role = el("div", "line");
    if (keep) {
      figure.classList.add("keep");
      role.appendChild(el("span", "badge", "keep"));
    } else {
      const label = el("label");
      const box = el("input", "remove-box");
      box.setAttribute("type", "checkbox");
      box.checked = !unticked.has(file.p);
      box.toggleAttribute("checked", box.checked);  // so a saved or dumped page shows the state
      figure.classList.add(box.checked ? "remove" : "spared");
      box.addEventListener("change", function () {
        if (box.checked) unticked.delete(file.p); else unticked.add(file.p);
        box.toggleAttribute("checked", box.checked);
        figure.classList.toggle("remove", box.checked);
        figure.classList.toggle("spared", !box.checked);
        updateDecisions();
      });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" remove"));
      role.appendChild(label);
      role.appendChild(document.createTextNode(
        "  score " + file.s.toFixed(4) + (file.x ? ", exact copy" : "")));
    }
    figure.appendChild(role);
    if (!keep) figure.appendChild(el("div", "line", file.v ? file.v : "not verified"));
    figure.appendChild(el("div", "line",
      humanBytes(file.b) + " (" + file.b.toLocaleString("en") + " bytes), " +
      file.w + " x " + file.h));
    const url = originalUrl(file);
    const caption = el("figcaption", "path");
    if (url) {
      const link = el("a", null, file.d || file.p);
      link.setAttribute("href", url);
      link.setAttribute("target", "_blank");
      link.setAttribute("rel", "noopener");
      caption.appendChild(link);
    } else {
      caption.textContent = file.d || file.p;
    }
    figure.appendChild(caption);
    return figure;
  }

  function renderPairFile(file) {
    const figure = el("figure", "file");
    if (file.t) {
      const img = el("img", "thumb");
      img.setAttribute("loading", "lazy");
      img.setAttribute("alt", "");
      img.setAttribute("src", data.thumbs + file.t);
      figure.appendChild(img);
    } else {
      figure.appendChild(el("div", "placeholder", "no preview: " + file.e));
    }
    const url = originalUrl(file);
    const caption = el("figcaption", "path");
    if (url) {
      const link = el("a", null, file.d || file.p);
      link.setAttribute("href", url);
      link.setAttribute("target", "_blank");
      link.setAttribute("rel", "noopener");
      caption.appendChild(link);
    } else {
      caption.textContent = file.d || file.p;
    }
    figure.appendChild(caption);
    return figure;
  }
  function renderUnverified() {
    const pairs = data.unverified || [];
    if (!pairs.length) return;
    const section = document.getElementById("unverified");
    section.appendChild(el("h2", null, pairs.length + " candidate pairs left unverified"));
    section.appendChild(el("p", "meta",
      "The embedding finds these alike, but they are too plain (smooth, flat or nearly blank) " +
      "for verification to tell a copy from a look-alike. They are in no group and no " +
      "decision; compare them by eye."));
    pairs.forEach(function (pair, i) {
      const item = el("div", "group unverified-pair");
      item.appendChild(el("h3", null, "Pair " + (i + 1) + ": score " + pair.s.toFixed(4)));
      const row = el("div", "files");
      row.append(renderPairFile(pair.a), renderPairFile(pair.b));
      item.appendChild(row);
      item.appendChild(el("div", "line", pair.v));
      section.appendChild(item);
    });
  }

  function renderGroup(entry) {
    const files = groups[entry.index];
    const section = el("section", "group");
    section.setAttribute("data-group", String(entry.index));
    section.appendChild(el("h2", null,
      "Group " + (entry.index + 1) + ": " + files.length + " files, " +
      humanBytes(entry.reclaim) + " reclaimable, lowest score " + entry.lowest.toFixed(4)));
    const row = el("div", "files");
    files.forEach(function (file, i) { row.appendChild(renderFile(file, i === 0)); });
    section.appendChild(row);
    return section;
  }

  function renderPager(id, pages) {
    const nav = document.getElementById(id);
    nav.replaceChildren();
    const prev = el("button", "prev", "< previous");
    prev.disabled = page === 0;
    prev.addEventListener("click", function () { go(page - 1); });
    const next = el("button", "next", "next >");
    next.disabled = page >= pages - 1;
    next.addEventListener("click", function () { go(page + 1); });
    const where = el("span", "page-number",
      "page " + (pages ? page + 1 : 0) + " of " + pages + " (" + shown.length + " of " +
      groups.length + " groups)");
    nav.append(prev, where, next);
  }

  function render() {
    const pages = Math.ceil(shown.length / data.pageSize);
    const main = document.getElementById("groups");
    const fragment = document.createDocumentFragment();
    for (const entry of shown.slice(page * data.pageSize, (page + 1) * data.pageSize))
      fragment.appendChild(renderGroup(entry));
    if (!shown.length) fragment.appendChild(el("p", "empty", "No group matches the filter."));
    main.replaceChildren(fragment);
    renderPager("pager-top", pages);
    renderPager("pager-bottom", pages);
  }
  function go(target) {
    const pages = Math.ceil(shown.length / data.pageSize);
    page = Math.max(0, Math.min(target, pages - 1));
    render();
    window.scrollTo(0, 0);
  }

  const sorts = {
    "lowest-first": function (a, b) { return a.lowest - b.lowest || a.index - b.index; },
    "highest-first": function (a, b) { return b.lowest - a.lowest || a.index - b.index; },
    "bytes": function (a, b) { return b.reclaim - a.reclaim || a.index - b.index; },
    "size": function (a, b) { return b.size - a.size || a.index - b.index; },
    "report": function (a, b) { return a.index - b.index; },
  };
  function apply() {
    const low = parseFloat(document.getElementById("min-score").value);
    const high = parseFloat(document.getElementById("max-score").value);
    shown = info.filter(function (entry) {
      return (isNaN(low) || entry.lowest >= low) && (isNaN(high) || entry.lowest <= high);
    });
    shown.sort(sorts[document.getElementById("sort").value]);
    page = 0;
    render();
  }

  function buildHeader() {
    const header = document.getElementById("summary");
    header.appendChild(el("h1", null, "dedup-gpu review: " + data.report));
    let reclaim = 0;
    for (const file of duplicates) reclaim += file.b;
    header.appendChild(el("div", "meta",
      groups.length + " groups, " + duplicates.length + " duplicates, " + humanBytes(reclaim) +
      " reclaimable. Report made " + data.created + " with " + data.model +
      ", threshold " + data.threshold + "."));
    header.appendChild(el("div", "meta",
      "Untick a duplicate to keep it, then export the decisions and give them to " +
      "dedup-gpu apply --decisions decisions.json. Nothing is deleted by this page."));
    header.appendChild(el("div", "meta", "")).setAttribute("id", "tally");
    document.title = "dedup-gpu review: " + data.report;
  }

  function buildControls() {
    const nav = document.getElementById("controls");
    const sortLabel = el("label", null, "Sort ");
    const select = el("select");
    select.setAttribute("id", "sort");
    [["lowest-first", "lowest score first"], ["highest-first", "highest score first"],
     ["bytes", "most reclaimable bytes"], ["size", "largest group"], ["report", "report order"]]
      .forEach(function (pair) {
        const option = el("option", null, pair[1]);
        option.setAttribute("value", pair[0]);
        select.appendChild(option);
      });
    select.value = "report";
    select.addEventListener("change", apply);
    sortLabel.appendChild(select);
    nav.appendChild(sortLabel);
    nav.appendChild(document.createTextNode("Lowest score in group from"));
    ["min-score", "max-score"].forEach(function (id, i) {
      if (i) nav.appendChild(document.createTextNode("to"));
      const input = el("input");
      input.setAttribute("id", id);
      input.setAttribute("type", "number");
      input.setAttribute("step", "0.01");
      input.setAttribute("min", "0");
      input.setAttribute("max", "1");
      input.addEventListener("change", apply);
      nav.appendChild(input);
    });
    const exportButton = el("button", null, "Export decisions");
    exportButton.setAttribute("id", "export");
    exportButton.addEventListener("click", exportDecisions);
    nav.appendChild(exportButton);
  }

  // Test hook: "#untick=N" unticks duplicate N (0-based, report order) on load.
  const hook = /^#untick=(\d+)$/.exec(window.location.hash);
  if (hook && Number(hook[1]) < duplicates.length) unticked.add(duplicates[Number(hook[1])].p);

  buildHeader();
  buildControls();
  apply();
  renderUnverified();
  updateDecisions();
})();
"""
