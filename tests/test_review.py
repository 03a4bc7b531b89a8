"""The review page: a reviewer opens review.html, looks at each group, unticks what must stay and
exports decisions.json. Reports are written by hand next to real Pillow images (no model), and
the page is checked in a real headless Chromium when one is installed (`make browser`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dedup_gpu.errors import BadArgumentError, OutputError
from dedup_gpu.report import read_report
from dedup_gpu.review import decisions_for, write_review

EVIL = "<img src=x onerror=alert(1)>.jpg"
CREATED = "2025-01-02T03:04:05+00:00"


def _photo(path: Path, colour: str, size: tuple[int, int] = (640, 480)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=90)
    return path


def _entry(path: Path, **duplicate: Any) -> dict[str, Any]:
    exists = path.exists()
    width, height = (640, 480)
    if exists:
        with contextlib.suppress(OSError), Image.open(path) as image:  # a non-image keeps 640x480
            width, height = image.size
    entry = {
        "path": str(path),
        "width": width,
        "height": height,
        "bytes": path.stat().st_size if exists else 123_456,
        "mtime": 1_700_000_000.0,
        "digest": None,
    }
    return entry | duplicate


def _duplicate(path: Path, matched: Path, score: float, **extra: Any) -> dict[str, Any]:
    return _entry(
        path,
        matched=str(matched),
        score=score,
        exact=extra.pop("exact", False),
        verification=extra.pop("verification", None),
    )


def _write_report(path: Path, groups: list[dict[str, Any]]) -> Path:
    report = {
        "version": 5,
        "created": CREATED,
        "model": "test-model",
        "threshold": 0.9,
        "groups": groups,
        "errors": [],
    }
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


@pytest.fixture
def small_report(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """Three groups of real images; `gone` is deleted after the scan, `evil` has markup in its
    name."""
    photos = tmp_path / "photos"
    files = {
        "beach": _photo(photos / "beach.jpg", "skyblue"),
        "beach copy": _photo(photos / "beach copy.jpg", "skyblue"),
        "beach small": _photo(photos / "beach small.jpg", "skyblue", (320, 240)),
        "cat": _photo(photos / "cat.png", "orange"),
        "evil": _photo(photos / EVIL, "purple"),
        "tree": _photo(photos / "tree.jpg", "green"),
        "gone": _photo(photos / "tree-gone.jpg", "green"),
    }
    verified = {
        "accepted": True,
        "method": "orb",
        "inliers": 87,
        "agreement": 0.93,
        "blocks": 40,
        "document": False,
        "reason": "photo: aligned by orb, 93% of blocks agree (need 60%)",
    }
    groups = [
        {
            "keep": _entry(files["beach"]),
            "duplicates": [
                _duplicate(files["beach copy"], files["beach"], 1.0, exact=True),
                _duplicate(files["beach small"], files["beach"], 0.981, verification=verified),
            ],
        },
        {
            "keep": _entry(files["cat"]),
            "duplicates": [_duplicate(files["evil"], files["cat"], 0.95)],
        },
        {
            "keep": _entry(files["tree"]),
            "duplicates": [_duplicate(files["gone"], files["tree"], 0.92)],
        },
    ]
    report = _write_report(tmp_path / "report.json", groups)
    files["gone"].unlink()  # the user deleted it by hand between scan and review
    return report, files


def test_review_page_has_thumbnails_and_placeholders(small_report, tmp_path: Path) -> None:
    report_path, files = small_report
    page = write_review(read_report(str(report_path)), str(tmp_path / "review.html"))

    html = Path(page.html_path).read_text(encoding="utf-8")
    assert Path(page.thumbnails_dir) == tmp_path / "review_files"
    assert (page.groups, page.files, page.thumbnails_written) == (3, 7, 6)
    thumbnails = sorted(Path(page.thumbnails_dir).glob("*.jpg"))
    assert len(thumbnails) == 6
    for thumbnail in thumbnails:
        with Image.open(thumbnail) as image:
            assert image.format == "JPEG" and max(image.size) == 160
        assert thumbnail.name in html
    # Thumbnails are named by a hash: no user file name, markup or spaces reach the folder.
    assert not any("beach" in path.name or "<" in path.name for path in thumbnails)

    # The deleted file is a placeholder in the page and named in the result, with a reason.
    assert [path for path, _ in page.unreadable] == [str(files["gone"])]
    assert "missing" in page.unreadable[0][1]

    # Data rides in one JSON element; markup in a file name cannot break out of it.
    assert html.count('<script type="application/json" id="report-data">') == 1
    assert "<img src=x onerror" not in html
    assert "\\u003cimg src=x onerror=alert(1)\\u003e.jpg" in html
    assert "innerHTML" not in html
    data = html.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["groups"][1][1]["p"] == str(files["evil"])


def test_thumbnails_follow_exif_orientation_and_bad_files_get_reasons(tmp_path: Path) -> None:
    sideways = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90 degrees)
    Image.new("RGB", (640, 480), "white").save(sideways, exif=exif)
    upright = _photo(tmp_path / "upright.jpg", "white", (480, 640))
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image\n")
    group = {
        "keep": _entry(upright),
        "duplicates": [_duplicate(sideways, upright, 0.99), _duplicate(notes, upright, 0.91)],
    }
    report = read_report(str(_write_report(tmp_path / "report.json", [group])))

    page = write_review(report, str(tmp_path / "review.html"), thumbnail_px=100)

    with Image.open(Path(page.thumbnails_dir) / _thumbnail_of(page, sideways)) as image:
        assert image.size == (75, 100)
    assert page.unreadable == [(str(notes), "not an image (unrecognised format)")]


def _thumbnail_of(page: Any, path: Path) -> str:
    data = Path(page.html_path).read_text(encoding="utf-8").split('id="report-data">', 1)[1]
    groups = json.loads(data.split("</script>", 1)[0])["groups"]
    return next(f["t"] for files in groups for f in files if f["p"] == str(path))


def test_decisions_remove_every_duplicate_unless_unticked(small_report) -> None:
    report_path, files = small_report
    report = read_report(str(report_path))

    decisions = decisions_for(report, {str(files["evil"])})

    assert decisions == {
        "format": "dedup-gpu-decisions",
        "version": 1,
        "report": str(report_path),
        "report_created": CREATED,
        "remove": sorted(str(files[name]) for name in ("beach copy", "beach small", "gone")),
        "keep": [str(files["evil"])],
    }
    json.dumps(decisions)  # the page downloads exactly this, so it must be plain JSON
    assert decisions_for(report, set())["keep"] == []
    with pytest.raises(BadArgumentError, match="not a duplicate"):
        decisions_for(report, {str(files["beach"])})  # a kept copy has no checkbox


def test_review_never_overwrites_what_it_did_not_write(small_report, tmp_path: Path) -> None:
    report_path, files = small_report
    report = read_report(str(report_path))
    with pytest.raises(OutputError, match="one of the images read"):
        write_review(report, str(files["beach"]))
    with pytest.raises(OutputError, match="it is the report"):
        write_review(report, str(report_path))
    theirs = tmp_path / "notes_files"
    theirs.mkdir()
    (theirs / "todo.txt").write_text("mine\n")
    with pytest.raises(OutputError, match="not made by dedup-gpu review"):
        write_review(report, str(tmp_path / "notes.html"))
    assert (theirs / "todo.txt").read_text() == "mine\n"
    assert files["beach"].read_bytes()[:2] == b"\xff\xd8"  # still the JPEG it was

    # A second run replaces the page and its own thumbnails, leaving no temporary files.
    write_review(report, str(tmp_path / "review.html"))
    write_review(report, str(tmp_path / "review.html"), thumbnail_px=64)
    assert not list(tmp_path.glob(".dedup-gpu-*"))
    assert len(list((tmp_path / "review_files").glob("*.jpg"))) == 6
    with pytest.raises(BadArgumentError):
        write_review(report, str(tmp_path / "review.html"), page_size=0)


def _large_report(tmp_path: Path, groups: int) -> Path:
    """`groups` groups of three; most files are missing, a few point at the same real photos."""
    real = [
        _photo(tmp_path / "photos" / f"real{i}.jpg", colour)
        for i, colour in enumerate(("red", "green", "blue"))
    ]
    missing = tmp_path / "gone"
    entries = []
    for number in range(groups):
        keep = real[number % 3] if number % 100 == 0 else missing / f"{number:05d}-keep.jpg"
        entries.append(
            {
                "keep": _entry(keep),
                "duplicates": [
                    _duplicate(missing / f"{number:05d}-{copy}.jpg", keep, 0.9 + copy * 0.01)
                    for copy in range(2)
                ],
            }
        )
    return _write_report(tmp_path / "big.json", entries)


def test_ten_thousand_groups_make_a_modest_page(tmp_path: Path) -> None:
    report = read_report(str(_large_report(tmp_path, 10_000)))

    page = write_review(report, str(tmp_path / "big.html"))

    size = os.path.getsize(page.html_path)
    assert size < 15_000_000, f"the page is {size:,} bytes"
    assert (page.groups, page.files, page.thumbnails_written) == (10_000, 30_000, 3)
    assert len(page.unreadable) == 30_000 - 100


# In a real browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: run `make browser` (apt-get install chromium)")


def _browse(url: str, tmp_path: Path, *extra: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Dom(HTMLParser):
    """Elements (tag, attributes) and the text of a dumped DOM, text by element id too."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open_ids: list[tuple[str, str]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if "id" in attributes and tag in ("pre", "span", "div", "section"):
            self._open_ids.append((tag, attributes["id"]))
            self.text_by_id[attributes["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open_ids:
            self.text_by_id[element_id] += data

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.elements if name in attrs.get("class", "").split()]


def test_browser_shows_groups_and_file_names_as_text(small_report, tmp_path: Path) -> None:
    _chromium()
    report_path, _ = small_report
    page = write_review(read_report(str(report_path)), str(tmp_path / "review.html"))
    url = Path(page.html_path).as_uri()

    markup = _browse(url, tmp_path, "--dump-dom")
    dom = _Dom(markup)

    assert len(dom.with_class("group")) == 3
    assert len(dom.with_class("keep")) == 3  # one kept copy per group, marked "keep"
    boxes = dom.with_class("remove-box")
    assert len(boxes) == 4 and all("checked" in box for box in boxes)  # ticked by default
    assert len(dom.with_class("placeholder")) == 1  # the deleted file
    images = [attrs for tag, attrs in dom.elements if tag == "img"]
    assert len(images) == 6 and all(image["loading"] == "lazy" for image in images)
    # The hostile name is shown as text, and no element grew an event handler from it.
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in markup
    assert not [attrs for _, attrs in dom.elements if any(k.startswith("on") for k in attrs)]
    assert "1.0000, exact copy" in markup and "accepted (orb)" in markup
    decisions = json.loads(dom.text_by_id["decisions-json"])
    assert decisions == decisions_for(read_report(str(report_path)), set())

    screenshot = tmp_path / "review.png"
    _browse(url, tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1600")
    assert screenshot.stat().st_size > 10_000
    with Image.open(screenshot) as image:
        assert image.size == (1280, 1600)
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 50  # not a blank page


def test_browser_untick_moves_a_duplicate_to_keep(small_report, tmp_path: Path) -> None:
    _chromium()
    report_path, files = small_report
    report = read_report(str(report_path))
    page = write_review(report, str(tmp_path / "review.html"))

    # Duplicate 0 in report order is the exact copy of the beach photo.
    dom = _Dom(_browse(Path(page.html_path).as_uri() + "#untick=0", tmp_path, "--dump-dom"))

    decisions = json.loads(dom.text_by_id["decisions-json"])
    assert decisions["keep"] == [str(files["beach copy"])]
    assert str(files["beach copy"]) not in decisions["remove"]
    assert decisions == decisions_for(report, {str(files["beach copy"])})
    assert len([box for box in dom.with_class("remove-box") if "checked" in box]) == 3
    assert "3 of 4 duplicates marked for removal" in dom.text_by_id["tally"]


def test_browser_pages_through_ten_thousand_groups(tmp_path: Path) -> None:
    _chromium()
    page = write_review(read_report(str(_large_report(tmp_path, 10_000))), str(tmp_path / "b.html"))

    markup = _browse(Path(page.html_path).as_uri(), tmp_path, "--dump-dom")
    dom = _Dom(markup)

    assert len(dom.with_class("group")) == 50  # one page of the default page size
    assert markup.count("page 1 of 200 (10000 of 10000 groups)") == 2  # pagers above and below
    decisions = json.loads(dom.text_by_id["decisions-json"])
    assert len(decisions["remove"]) == 20_000 and decisions["keep"] == []


def test_browser_links_only_originals_a_browser_can_open(tmp_path: Path) -> None:
    _chromium()
    kept = _photo(tmp_path / "photos" / "beach.jpg", "skyblue")
    member = f"{tmp_path / 'shards' / '000001.tar'}#000001042.jpg"
    web = "https://images.example.org/beach-copy.jpg"
    duplicates = [
        _duplicate(Path(member), kept, 0.97),
        _duplicate(Path("s3://bucket/beach-copy.jpg"), kept, 0.96),
        _duplicate(Path(web), kept, 0.95),
    ]
    duplicates[1]["path"] = "s3://bucket/beach-copy.jpg"  # Path would fold the '//'
    duplicates[2]["path"] = web
    report = _write_report(
        tmp_path / "report.json", [{"keep": _entry(kept), "duplicates": duplicates}]
    )
    page = write_review(read_report(str(report)), str(tmp_path / "review.html"))

    dom = _Dom(_browse(Path(page.html_path).as_uri(), tmp_path, "--dump-dom"))

    links = sorted(attrs["href"] for tag, attrs in dom.elements if tag == "a" and "href" in attrs)
    links = [link for link in links if not link.startswith("blob:")]
    assert links == [kept.as_uri(), web], links  # not the tar member, not the s3 key


def test_browser_lists_pairs_left_unverified_apart_from_the_groups(
    small_report, tmp_path: Path
) -> None:
    # Two smooth gradients verification could not tell apart: the page shows them side by side
    # under their own heading, with the reason, and they are in no decision.
    _chromium()
    report_path, _ = small_report
    report = json.loads(report_path.read_text())
    report["version"] = 6
    first = _photo(tmp_path / "plain" / "sky.jpg", "lightblue")
    second = _photo(tmp_path / "plain" / EVIL, "lightsteelblue")
    reason = "plain: too plain to compare: colour varies by 1.2 over the overlap"
    report["unverified_pairs"] = [
        {
            "paths": [str(first), str(second)],
            "score": 0.93,
            "verification": {"accepted": False, "outcome": "unverified", "reason": reason},
        }
    ]
    report_path.write_text(json.dumps(report), encoding="utf-8")
    saved = read_report(str(report_path))
    assert [(p.path_a, p.path_b) for p in saved.unverified] == [(str(first), str(second))]

    page = write_review(saved, str(tmp_path / "review.html"))
    dom = _Dom(_browse(Path(page.html_path).as_uri(), tmp_path, "--dump-dom"))
    pairs = dom.with_class("unverified-pair")
    assert len(pairs) == 1
    assert "1 candidate pairs left unverified" in dom.text_by_id["unverified"]
    assert reason in dom.text_by_id["unverified"]
    assert EVIL in dom.text_by_id["unverified"]  # as text
    decisions = json.loads(dom.text_by_id["decisions-json"])
    assert str(first) not in decisions["remove"] + decisions["keep"]
    assert len(dom.with_class("group")) == 3 + 1  # the three groups, and the pair's own box
