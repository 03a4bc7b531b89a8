"""Any name a file system allows survives the whole user path, and is shown safely everywhere.

A user scans a folder whose file names hold terminal escapes, line breaks of every kind,
bidirectional overrides, bytes that are not UTF-8, leading dashes, names close to 255 bytes,
HTML, spreadsheet and shell metacharacters, rich markup, percent-escapes, `#` (which the tool
reads as `container#member` for shards) and spaces at the ends. Each such name is given to an
exact copy (some to a near copy: a JPEG re-save or a slight crop) of a real photo, so groups form.
The names are a fixed list of the nastiest, and names mixed at random from those classes by
`random.Random(seed)` for a few seeds. The user then:

- scans (`scan --out --csv`): exit 0, every file in the report exactly once, in a group or in
  `errors`, its name reading back to the bytes on disk; the CSV, read with Python's csv module
  and the documented apostrophe neutralisation undone, names each file, and no cell starts
  like a spreadsheet formula;
- reviews (`review --html`): the page is written, names sit only inside its JSON data block and
  never become markup, and in a real browser (when Chromium is installed) each name is shown as
  text, links to its own file and exports the same decisions as `decisions_for`;
- exports (`export --keep-list --remove-list --csv`): every name is listed, except a name with a
  line break (or not UTF-8), which is left out with a message;
- applies (`apply --action move --to DIR`, dry run, then `--yes`): exactly the duplicates move,
  under their own names; then undoes: the tree is byte-identical again (paths, bytes,
  permissions, modification times to the nanosecond), and a second undo changes nothing.

No terminal output on the way holds a raw ESC, CR, BEL or other control character, a line or
paragraph separator, or a bidirectional control: each is shown as an escape.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import unicodedata
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from conftest import skimage_photo
from PIL import Image
from test_review import _chromium
from typer.testing import CliRunner

from dedup_gpu.cli import app
from dedup_gpu.csv_cells import read_text_cell
from dedup_gpu.report import read_report
from dedup_gpu.review import decisions_for

runner = CliRunner()
ENV = {"COLUMNS": "4000"}  # a log file, not a terminal: lines are never wrapped

# Photos whose exact and near copies the names are given to: (photo, extension of its bytes).
ORIGINALS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")

# The nastiest names, each in full. Every one is scanned, reviewed, exported, moved and restored.
NASTY: tuple[bytes, ...] = (
    b"clear \x1b[2J\x1b[H.png",
    b"title \x1b]0;owned\x07.png",
    b"carriage\rreturn.png",
    b"new\nline: fake output.png",
    b"tab\there.png",
    b"delete\x7f\x08.png",
    "line\u2028separator.png".encode(),
    "paragraph\u2029separator.png".encode(),
    "next\x85line.png".encode(),
    b"form\x0cfeed\x0bvtab.png",
    "bidi \u202egnp.exe.png".encode(),
    "zero\u200bwidth\u200d\ufeff\u2060.png".encode(),
    b"bad \xff byte.png",
    b"bad \xc3\x28 pair.png",
    b"-rf.png",
    b"--out=x.png",
    ("\u65e5" * 83).encode() + b".png",  # 253 bytes of 3-byte characters
    ("\u00e9" * 125).encode() + b".png",  # 254 bytes of 2-byte characters
    b"<script>alert(1)<img src=x onerror=alert(2)>.png",
    b"\"double\" & 'single' &amp; &lt;.png",
    # A name cannot hold '/', but a path can: folders `<` and `textarea><` spell these out.
    b"</textarea></script><!--.png",
    b"</script><script>alert(1)</script>.png",
    b'=HYPERLINK("http:x","y").png',
    b"+cmd.png",
    b"@SUM(A1).png",
    b'a,b;c "q".png',
    b"'=already quoted.png",
    b"$(touch x) `id` *?[ab].png",
    b"[bold]x[/] [link=file:///etc]y.png",
    b"%2F%00%ZZ%.png",
    b"shard.tar#000001.png",
    b"#hash.png",
    b"  spaces at both ends  .png",
    b"... .png",
)

# Fragments a fuzzed name is made of, by class. A class in STARTS goes first, where it bites.
CLASSES: dict[str, tuple[bytes, ...]] = {
    "control": (
        b"\x1b[2J",
        b"\x1b]0;title\x07",
        b"\r",
        b"\n",
        b"\t",
        b"\x7f",
        b"\x1b[31m",
        b"\x08",
    ),
    "separator": tuple(c.encode() for c in ("\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c")),
    "bidi": tuple(c.encode() for c in ("\u202e", "\u202d", "\u2066", "\u200f", "\u061c")),
    "zero width": tuple(c.encode() for c in ("\u200b", "\u200c", "\u200d", "\ufeff", "\u2060")),
    "not utf-8": (b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\xfe"),
    "dash": (b"-rf", b"--out=x", b"-", b"--"),
    "html": (b"<script>", b"<", b'"', b"'", b"&amp;", b"<textarea>", b"<img onerror=x>"),
    "csv": (b"=1+1", b"+cmd", b"-2", b"@SUM(A1)", b",", b'"', b";"),
    "shell": (b"$(x)", b"`id`", b"*", b"?", b"[", b"]", b"|", b"&", b"~", b"!"),
    "markup": (b"[bold]x[/]", b"[red]", b"[/]", b"[link=x]"),  # a "/" makes a folder
    "percent": (b"%2F", b"%00", b"%ZZ", b"%", b"%25"),
    "hash": (b"#", b"x.tar#", b".tar#m", b"#1", b".parquet#0"),
    "space": (b" ", b"  ", "\u00a0".encode(), "\u3000".encode()),
    "dots": (b"...", b"..", b"."),
    "unicode": tuple(s.encode() for s in ("\u00e9", "\u65e5\u672c", "\U0001f642", "e\u0301")),
    "long": tuple(s.encode() for s in ("\u00e9", "\u65e5", "\U0001f642")),
}
STARTS = ("dash", "csv", "space", "dots")
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def fuzzed_names(seed: int, count: int) -> list[bytes]:
    """`count` distinct names mixing 1 to 4 classes; each ends in an image extension."""
    rng = random.Random(seed)
    names: list[bytes] = []
    while len(names) < count:
        classes = rng.sample(sorted(CLASSES), rng.randint(1, 4))
        classes.sort(key=lambda name: name not in STARTS)
        extension = rng.choice((b".png", b".jpg", b".PNG", b".jpeg"))
        stem = b"".join(
            rng.choice(CLASSES[name]) + rng.choice((b"", b"x", b" a ")) for name in classes
        )
        if "long" in classes:  # fill up to 255 bytes with multibyte characters
            filler = rng.choice(CLASSES["long"])
            room = 255 - len(stem) - len(extension)
            stem += filler * (room // len(filler)) + b"z" * (room % len(filler))
        name = stem[: 255 - len(extension)] + extension
        # A name the folder walk takes for an image: an extension after a stem that is not dots.
        if os.path.splitext(name)[1] != extension:
            name = b"x" + name[1:] if len(name) == 255 else b"x" + name
        if name not in names:
            names.append(name)
    return names


# Building a collection


def make_collection(folder: Path, names: list[bytes], seed: int, near: int) -> dict[bytes, str]:
    """The originals under plain names, then an exact copy of one of them under each name (the
    first `near` names get a near copy instead: a JPEG re-save or a slight crop), each with its
    own permissions and nanosecond mtime. Returns each file's path (bytes) -> its original."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    root = os.fsencode(folder)
    made: dict[bytes, str] = {}
    for original in ORIGINALS:
        path = os.path.join(root, original.encode())
        shutil.copyfile(skimage_photo(original), path)
        made[path] = original
    for number, name in enumerate(names):
        original = ORIGINALS[number % len(ORIGINALS)]
        path = os.path.normpath(os.path.join(root, name))  # "a//b" is read as "a/b"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if number < near:
            with Image.open(skimage_photo(original)) as image:
                rgb = image.convert("RGB")
                if number % 2:
                    width, height = rgb.size
                    cut = (width // 25, height // 25, width - width // 25, height - height // 25)
                    rgb.crop(cut).save(path, "PNG")
                else:
                    rgb.save(path, "JPEG", quality=88)
        else:
            shutil.copyfile(skimage_photo(original), path)
        made[path] = original
    for path in made:
        os.chmod(path, rng.choice((0o644, 0o600, 0o640, 0o444, 0o664)))
        mtime_ns = 1_500_000_000_000_000_000 + rng.randrange(10**17)
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return made


def write_broken(folder: Path) -> dict[bytes, str]:
    """Two files no scan can read, with nasty names, in a folder named `-unreadable [red]` below
    `folder`: path -> a word of their reason."""
    root = os.path.join(os.fsencode(folder), b"-unreadable [red]\x1b[0m")
    os.makedirs(root)
    truncated = os.path.join(root, b"\x1b[31mtruncated\r\xff.jpg")
    empty = os.path.join(root, "<b>empty<\u2044b>\u2028[bold].png".encode())
    with open(truncated, "wb") as out:
        out.write(skimage_photo("rocket.jpg").read_bytes()[:5000])
    open(empty, "wb").close()
    return {truncated: "truncated", empty: "empty"}


def tree_state(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """Everything under root: relative path (bytes) -> (kind, digest, mode, mtime in ns); a
    folder's mtime is left out, as adding and removing its files changes it."""
    state: dict[bytes, tuple[Any, ...]] = {}
    base = os.fsencode(root)
    for folder, folders, files in os.walk(base):
        for name in folders + files:
            path = os.path.join(folder, name)
            status = os.lstat(path)
            digest, mtime_ns = None, None
            if not stat.S_ISDIR(status.st_mode):
                mtime_ns = status.st_mtime_ns
            if stat.S_ISREG(status.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, base)] = (
                stat.S_IFMT(status.st_mode),
                digest,
                stat.S_IMODE(status.st_mode),
                mtime_ns,
            )
    return state


# What the user sees


def on_terminal(text: str) -> str:
    """How the README says a name is shown: control characters, line and paragraph separators,
    bidirectional controls and bytes that are not UTF-8 as escapes; everything else as typed."""

    def one(char: str) -> str:
        code = ord(char)
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI_CONTROLS:
            return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        return char

    return "".join(one(char) for char in text)


def assert_safe_on_terminal(output: str) -> None:
    """No character that could move the cursor, forge a line or reverse a name's end."""
    bad = sorted(
        {
            char
            for char in output
            if char != "\n"
            and (unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI_CONTROLS)
        }
    )
    assert not bad, f"raw characters on the terminal: {bad!r}"


def as_csv_cell(path: str) -> str:
    """A path as the CSVs hold it once neutralisation is undone (bad bytes as their escape)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for column, cell in row.items():
            # The documented neutralisation: no cell may start like a formula.
            assert not cell.startswith(FORMULA_STARTS), (column, cell)
    return rows


def has_line_break(path: str) -> bool:
    return path.splitlines() != [path]


def is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class PageTags(HTMLParser):
    """The start tags of a page, and the text of its JSON data block."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.data_block = ""
        self._in_data = False
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_data = tag == "script" and ("type", "application/json") in attrs

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data


# The template's own elements, in order: anything more would be markup from a name.
PAGE_TAGS = [
    "html", "head", "meta", "meta", "meta", "title", "style", "body", "noscript", "p", "header",
    "nav", "nav", "main", "nav", "section", "pre", "script", "script",
]  # fmt: skip


# The story


def invoke(*arguments: str) -> Any:
    result = runner.invoke(app, list(arguments), env=ENV)
    assert_safe_on_terminal(result.output)
    return result


def scan_and_check(
    files: dict[bytes, str], broken: dict[bytes, str], arguments: list[str], out: Path
) -> dict[str, Any]:
    """Scan; the report names each file once and the CSV names each file in a group."""
    report_path, csv_path = out / "report.json", out / "report.csv"
    scanned = invoke(
        "scan", "--device", "cpu", "--out", str(report_path), "--csv", str(csv_path), *arguments
    )
    assert scanned.exit_code == 0, scanned.output

    report = json.loads(report_path.read_text(encoding="utf-8"))
    grouped = [g["keep"]["path"] for g in report["groups"]]
    grouped += [d["path"] for g in report["groups"] for d in g["duplicates"]]
    failed = {os.fsencode(e["path"]): e["reason"] for e in report["errors"]}
    # Every file exactly once, under its own bytes; each unreadable one with its reason.
    assert sorted(map(os.fsencode, grouped)) + sorted(failed) == sorted(files) + sorted(broken)
    assert Counter(map(os.fsencode, grouped)) == Counter(list(files))
    for path, word in broken.items():
        assert word in failed[path], failed[path]
    # Copies of one photo form one group, whatever their names.
    for group in report["groups"]:
        members = [group["keep"], *group["duplicates"]]
        assert len({files[os.fsencode(m["path"])] for m in members}) == 1, group
    assert len(report["groups"]) == len(set(files.values()))

    # The terminal names each file, as an escape where it must.
    for path in [*grouped, *(e["path"] for e in report["errors"])]:
        assert on_terminal(path) in scanned.output, path

    rows = read_csv(csv_path)
    assert Counter(read_text_cell(row["path"]) for row in rows) == Counter(
        as_csv_cell(path) for path in grouped
    )
    return report


def review_and_check(report_path: Path, report: dict[str, Any], page: Path) -> None:
    reviewed = invoke("review", str(report_path), "--html", str(page))
    files = sum(1 + len(g["duplicates"]) for g in report["groups"])
    assert reviewed.exit_code == 0, reviewed.output
    assert f"{len(report['groups'])} groups, {files} files, {files} thumbnails" in reviewed.output

    markup = page.read_bytes().decode("utf-8")
    assert markup.isascii()  # every name's character is an escape inside the data block
    parsed = PageTags(markup)
    assert parsed.tags == PAGE_TAGS  # no name became an element
    assert "<" not in parsed.data_block and ">" not in parsed.data_block
    data = json.loads(parsed.data_block)
    assert [[file["p"] for file in group] for group in data["groups"]] == [
        [g["keep"]["path"], *(d["path"] for d in g["duplicates"])] for g in report["groups"]
    ]


def export_and_check(report_path: Path, report: dict[str, Any], out: Path) -> None:
    keep_list, remove_list, table = out / "keep.txt", out / "remove.txt", out / "export.csv"
    exported = invoke(
        "export", str(report_path), "--keep-list", str(keep_list),
        "--remove-list", str(remove_list), "--csv", str(table),
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    kept = [g["keep"]["path"] for g in report["groups"]]
    removed = [d["path"] for g in report["groups"] for d in g["duplicates"]]

    def listable(path: str) -> bool:
        return not has_line_break(path) and is_utf8(path)

    # A list is split at line feeds only, as dedup-gpu reads its own lists.
    assert keep_list.read_text(encoding="utf-8").split("\n") == [
        *sorted(p for p in kept if listable(p)),
        "",
    ]
    assert remove_list.read_text(encoding="utf-8").split("\n") == [
        *sorted(p for p in removed if listable(p)),
        "",
    ]
    left_out = [p for p in kept + removed if not listable(p)]
    assert left_out  # every collection here has names no line list can hold
    assert exported.output.count("not listed ") == len(left_out)
    for path in left_out:
        reason = "line break" if has_line_break(path) else "not valid UTF-8"
        assert f"not listed {on_terminal(repr(path))}: " in exported.output
        assert reason in exported.output

    rows = read_csv(table)
    assert Counter((read_text_cell(r["path"]), r["action"]) for r in rows) == Counter(
        [(as_csv_cell(p), "keep") for p in kept] + [(as_csv_cell(p), "remove") for p in removed]
    )


def apply_undo_and_check(
    report_path: Path, report: dict[str, Any], photos: Path, moved: Path
) -> None:
    before = tree_state(photos)
    # apply names each file by its absolute path, and moves it to the same place below DIR.
    duplicates = [os.path.abspath(d["path"]) for g in report["groups"] for d in g["duplicates"]]
    relative = {os.path.relpath(os.fsencode(path), os.fsencode(photos)) for path in duplicates}

    dry = invoke("apply", str(report_path), "--action", "move", "--to", str(moved))
    assert dry.exit_code == 0, dry.output
    assert tree_state(photos) == before and not moved.exists()
    assert [line for line in dry.output.split("\n") if line.startswith("would move ")] == [
        f"would move {on_terminal(p)} -> {on_terminal(str(moved / os.path.relpath(p, photos)))}"
        for p in duplicates
    ]

    applied = invoke("apply", str(report_path), "--action", "move", "--to", str(moved), "--yes")
    assert applied.exit_code == 0, applied.output
    assert f"{len(duplicates)} file(s) changed" in applied.output and "0 skipped" in applied.output
    after = tree_state(photos)
    assert sorted(after) == sorted(set(before) - set(relative))  # exactly the duplicates left
    assert all(after[name] == before[name] for name in after)  # kept copies untouched
    moved_files = {k: v for k, v in tree_state(moved).items() if not stat.S_ISDIR(v[0])}
    assert moved_files == {name: before[name] for name in relative}  # under their own names
    journals = sorted(report_path.parent.glob("report.apply-*.jsonl"))
    assert len(journals) == 1

    undone = invoke("undo", str(journals[0]))
    assert undone.exit_code == 0, undone.output
    assert f"{len(duplicates)} restored, 0 already in place, 0 could not be restored" in (
        undone.output
    )
    for path in duplicates:
        assert f"restored {on_terminal(path)}\n" in undone.output
    assert tree_state(photos) == before  # paths, bytes, permissions, mtimes
    assert not [s for s in tree_state(moved).values() if not stat.S_ISDIR(s[0])]

    again = invoke("undo", str(journals[0]))
    assert again.exit_code == 0, again.output
    assert f"0 restored, {len(duplicates)} already in place, 0 could not" in again.output
    assert tree_state(photos) == before


def test_the_nastiest_names_survive_scan_review_export_apply_and_undo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user names each file on the command line, after `--` since some begin with dashes,
    # from inside the folder: the report's paths are the bare names, as typed. The unreadable
    # files are in a folder named too (named directly, an unreadable file stops the scan).
    photos, out = tmp_path / "photos", tmp_path / "out"
    out.mkdir()
    names = [*NASTY, b"...png", b"trailing space.png "]  # named directly, not found by a walk
    files = make_collection(photos, names, seed=0, near=0)
    broken = write_broken(photos)
    monkeypatch.chdir(photos)
    base = os.fsencode(photos)
    relative = {os.path.relpath(path, base): original for path, original in files.items()}
    broken_relative = {os.path.relpath(path, base): word for path, word in broken.items()}
    unreadable = {os.path.dirname(path) for path in broken_relative}
    arguments = ["--", *map(os.fsdecode, [*relative, *unreadable])]

    report = scan_and_check(relative, broken_relative, arguments, out)
    assert list(read_report(str(out / "report.json")).roots) == [str(photos)]
    review_and_check(out / "report.json", report, out / "review.html")
    export_and_check(out / "report.json", report, out)
    apply_undo_and_check(out / "report.json", report, photos, tmp_path / "moved")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzzed_names_survive_scan_review_export_apply_and_undo(seed: int, tmp_path: Path) -> None:
    # The user scans the whole folder; some names hold near copies, which verification joins.
    photos, out = tmp_path / "photos", tmp_path / "out"
    out.mkdir()
    files = make_collection(photos, fuzzed_names(seed, 24), seed=seed, near=4)
    broken = write_broken(photos)

    report = scan_and_check(files, broken, [str(photos)], out)
    assert report["counts"]["near_duplicates"] == 4
    review_and_check(out / "report.json", report, out / "review.html")
    export_and_check(out / "report.json", report, out)
    apply_undo_and_check(out / "report.json", report, photos, tmp_path / "moved")


def test_fuzzed_names_are_varied() -> None:
    # The fuzzing itself: every class is drawn, names run up to 255 bytes, none repeats.
    names = [name for seed in (1, 2, 3) for name in fuzzed_names(seed, 24)]
    assert len(set(names)) == len(names) and max(map(len, names)) == 255
    for fragments in CLASSES.values():
        assert any(fragment in name for name in names for fragment in fragments if fragment)


# In a real browser


class _Captions(HTMLParser):
    """Per figure of a dumped review page: its caption text and its link, if any."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.captions: list[list[Any]] = []  # [text, href]
        self.groups = 0
        self.decisions = ""
        self._in: str | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and "group" in (attributes.get("class") or "").split():
            self.groups += 1
        if tag == "figcaption":
            self.captions.append(["", None])
            self._in = "caption"
        elif tag == "a" and self._in == "caption":
            self.captions[-1][1] = attributes.get("href")
        elif tag == "pre" and attributes.get("id") == "decisions-json":
            self._in = "decisions"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("figcaption", "pre"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "caption":
            self.captions[-1][0] += data
        elif self._in == "decisions":
            self.decisions += data


def test_the_review_page_shows_every_odd_name_as_text_in_a_browser(tmp_path: Path) -> None:
    # The reviewer opens the page: every group is drawn (one name the browser cannot encode
    # once stopped the page from drawing any), each caption is the file's name as text, its link
    # opens that very file, and the decisions are the ones `apply --decisions` expects.
    chromium = _chromium()
    photos = tmp_path / "photos"
    files = make_collection(photos, list(NASTY), seed=4, near=0)
    report_path, page = tmp_path / "report.json", tmp_path / "review.html"
    scanned = invoke("scan", "--device", "cpu", "--out", str(report_path), "-q", str(photos))
    assert scanned.exit_code == 0, scanned.output
    assert invoke("review", str(report_path), "--html", str(page)).exit_code == 0

    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
        page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Captions(done.stdout.decode("utf-8"))

    report = read_report(str(report_path))
    assert dom.groups == len(report.groups) == len(ORIGINALS)
    assert len(dom.captions) == len(files)
    names = sorted(os.fsdecode(path) for path in files)

    def as_the_page_shows(name: str) -> str:  # controls, separators, bidi and bad bytes escaped
        unshowable = (
            "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f"
            "\u202a-\u202e\u2066-\u2069\udc80-\udcff]"
        )

        def escape(match: re.Match[str]) -> str:
            code = ord(match.group())
            return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

        return re.sub(unshowable, escape, name)

    assert sorted(text for text, _ in dom.captions) == sorted(map(as_the_page_shows, names))
    links = sorted(unquote_to_bytes(href.removeprefix("file://")) for _, href in dom.captions)
    assert links == sorted(files)  # each link opens the file itself, '#', '%' and bad bytes too
    assert json.loads(dom.decisions) == decisions_for(report, set())
