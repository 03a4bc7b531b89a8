#!/usr/bin/env bash
# Builds a pool of distinct real plain images (gradients, abstract and minimal wallpapers) for
# development benchmarks, from Debian packages (no internet needed beyond Debian's package
# registry). Usage: wallpapers.sh OUTDIR [tune|heldout]   (default: tune)
#
#   tune:    gnome-backgrounds, xfdesktop4-data, mate-backgrounds. gnome and xfce are nearly all
#            plain (gradients, blobs, stripes, flat shapes); mate's abstract and desktop folders
#            are plain, its nature folder is photos (flowers, dunes, rain drops), kept on purpose.
#   heldout: plasma-workspace-wallpapers, desktop-base. Mostly plain (KDE's gradients, waves and
#            flat landscapes, Debian's release artwork); a few KDE ones are photos.
#
# Each file in OUTDIR is one distinct wallpaper. A package ships one wallpaper at several sizes:
# we keep one (the largest landscape one at most 3000 px wide, else the smallest, downscaled to
# 2560 px wide); of light/dark pairs (gnome's -l/-d, KDE's images_dark, MATE's -Light/-Dark) we
# keep the light one; SVGs are rendered with rsvg-convert (librsvg2-bin) at their own size, at
# most 2560 px wide; MATE's transparent overlays are laid over a solid colour. Screenshots,
# previews, lock-screen, login and boot-menu versions, logos, icons and small files are left out,
# and so are byte-identical and near-identical files (32x32 colour thumbnails compared; a
# recoloured version is kept as another picture). Licences: see each package's
# /usr/share/doc/PACKAGE/copyright. Results (Debian 12 packages): tune 46, heldout 38 images.
# Needs a Python with Pillow: $PYTHON, else the repository's .venv, else python3.
set -euo pipefail
out=${1:?usage: wallpapers.sh OUTDIR [tune|heldout]}
set_name=${2:-tune}
case "$set_name" in
  tune) packages="gnome-backgrounds xfdesktop4-data mate-backgrounds" ;;
  heldout) packages="plasma-workspace-wallpapers desktop-base" ;;
  *) echo "unknown set '$set_name': expected tune or heldout" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
  python=python3
  [ -x "$here/../../.venv/bin/python" ] && python="$here/../../.venv/bin/python"
fi
if ! "$python" -c "import PIL" 2>/dev/null; then
  echo "$python cannot import Pillow; set PYTHON to a Python that can" >&2
  exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
[ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get download -qq $packages 2>&1 >/dev/null | { grep -v "unsandboxed as root" >&2 || true; }
for d in *.deb; do dpkg-deb -x "$d" x; done

# rsvg-convert renders the SVG wallpapers: installed, or unpacked from its package (librsvg
# itself is part of most systems); without it the SVGs are skipped, with a note.
rsvg=$(command -v rsvg-convert || true)
if [ -z "$rsvg" ]; then
  apt-get install -y -qq librsvg2-bin >/dev/null 2>&1 || true
  rsvg=$(command -v rsvg-convert || true)
fi
if [ -z "$rsvg" ] && apt-get download -qq librsvg2-bin >/dev/null 2>&1; then
  dpkg-deb -x librsvg2-bin_*.deb rsvg
  unpacked="$work/rsvg/usr/bin/rsvg-convert"
  if "$unpacked" --version >/dev/null 2>&1; then rsvg=$unpacked; fi
fi
[ -n "$rsvg" ] || echo "note: rsvg-convert is not available here; SVG wallpapers are skipped" >&2

"$python" - "$work/x" "$set_name" "$out" "$rsvg" <<'PY'
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

root, set_name, out, rsvg = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
MAX_KEPT_WIDTH = 3000  # a size at most this wide is kept as it is
TARGET_WIDTH = 2560  # anything larger is downscaled to this width
MIN_BYTES, MIN_SIDE = 20_000, 480  # smaller files are icons, previews or thumbnails
NEAR = 6.0  # mean abs difference (0-255) of 32x32 colour thumbnails below which two are one
EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".svg"}
SKIP = re.compile(r"screenshot|preview|thumbnail|logo|icon|lockscreen|login|grub|plymouth", re.I)
SIZE_NAME = re.compile(r"(\d+)x(\d+)$")


def candidates(source: str, folder: Path):
    """(wallpaper key, file) for every image that may be a wallpaper in `folder`."""
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder)).replace("no-logo", "")  # a wallpaper, no logo
        if path.suffix.lower() not in EXTENSIONS or not path.is_file() or SKIP.search(relative):
            continue
        if source == "gnome":  # adwaita-l / adwaita-d: one wallpaper
            yield re.sub(r"-[ld]$", "", path.stem), path
        elif source == "mate":  # Elephants_3840x2160, MATE-Stripes-Light / -Dark
            stem = re.sub(r"_\d+x\d+$", "", path.stem)
            yield re.sub(r"-(light|dark)$", "", stem, flags=re.I).lower(), path
        elif source == "plasma":  # Name/contents/images/WxH.ext (images_dark: the dark one)
            parts = path.relative_to(folder).parts
            if len(parts) >= 3 and parts[1:3] == ("contents", "images"):
                yield parts[0], path
        elif source == "debian":  # THEME-theme/wallpaper/contents/images/WxH.svg
            parts = path.relative_to(folder).parts
            if len(parts) >= 4 and parts[1:4] == ("wallpaper", "contents", "images"):
                yield parts[0], path
        else:
            yield path.stem, path


def declared_size(path: Path) -> tuple[int, int]:
    """The size a file says it has: in its name (WxH), else its pixels ((0, 0) for an SVG)."""
    found = SIZE_NAME.search(path.stem)
    if found:
        return int(found.group(1)), int(found.group(2))
    if path.suffix.lower() == ".svg":
        return 0, 0
    with Image.open(path) as image:
        return image.size


def declared_width(path: Path) -> int:
    return declared_size(path)[0]


def is_dark_variant(path: Path) -> bool:
    stem = path.stem.lower()
    return "images_dark" in path.parts or stem.endswith(("-d", "-dark"))


def chosen(files: list[Path]) -> Path:
    """The light, landscape version, at the largest size at most MAX_KEPT_WIDTH wide, else the
    smallest (to be downscaled)."""
    light = [path for path in files if not is_dark_variant(path)] or files
    # A desktop wallpaper, not its tall phone version (another crop of the artwork).
    landscape = [path for path in light if declared_size(path)[0] >= declared_size(path)[1]]
    light = landscape or light
    widths = {path: declared_width(path) for path in light}
    fitting = [path for path in light if widths[path] <= MAX_KEPT_WIDTH]
    if fitting:
        return max(fitting, key=lambda path: (widths[path], path.suffix.lower() != ".svg"))
    return min(light, key=lambda path: widths[path])


def difference(first: bytes, second: bytes) -> float:
    """Mean absolute difference of two thumbnails' bytes (0-255)."""
    return sum(abs(a - b) for a, b in zip(first, second)) / len(first)


GROUNDS = ((46, 52, 54), (38, 70, 110), (60, 110, 70), (110, 50, 60), (90, 80, 120))


def flattened(image: Image.Image, name: str) -> Image.Image:
    """RGB pixels; a transparent overlay (MATE ships some, to lay over the desktop colour) is
    laid over a solid colour picked by its name, as the desktop would show it."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        ground = GROUNDS[hashlib.sha256(name.encode()).digest()[0] % len(GROUNDS)]
        flat = Image.new("RGBA", rgba.size, (*ground, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")


def load(path: Path) -> Image.Image | None:
    if path.suffix.lower() != ".svg":
        with Image.open(path) as image:
            image.load()
            return image
    if not rsvg:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        rendered = Path(scratch) / "rendered.png"
        width = declared_width(path)
        size = ["-w", str(min(width, TARGET_WIDTH))] if width else []
        result = subprocess.run(
            [rsvg, *size, "-o", str(rendered), str(path)], capture_output=True, check=False
        )
        if result.returncode != 0 or not rendered.exists():
            print(f"skipped {path.name}: rsvg-convert failed", file=sys.stderr)
            return None
        with Image.open(rendered) as image:
            image.load()
            if image.width > TARGET_WIDTH:  # an SVG with no size in its name, drawn large
                image = image.resize(
                    (TARGET_WIDTH, round(image.height * TARGET_WIDTH / image.width)),
                    Image.Resampling.LANCZOS,
                )
            return image


SOURCES = {
    "tune": (
        ("gnome", "usr/share/backgrounds/gnome"),
        ("xfce", "usr/share/backgrounds/xfce"),
        ("mate", "usr/share/backgrounds/mate"),
    ),
    "heldout": (("plasma", "usr/share/wallpapers"), ("debian", "usr/share/desktop-base")),
}
written, digests, thumbs = 0, set(), []
skipped_svgs = 0
for source, folder in SOURCES[set_name]:
    groups: dict[str, list[Path]] = {}
    for key, path in candidates(source, root / folder):
        groups.setdefault(key, []).append(path)
    for key, files in sorted(groups.items()):
        path = chosen(files)
        if path.suffix.lower() != ".svg" and path.stat().st_size < MIN_BYTES:
            print(f"left out {path.relative_to(root)}: a small file", file=sys.stderr)
            continue
        image = load(path)
        if image is None:
            skipped_svgs += 1
            continue
        if min(image.size) < MIN_SIDE:
            print(f"left out {path.relative_to(root)}: {image.size} is too small", file=sys.stderr)
            continue
        name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{source}_{key}")
        rgb = flattened(image, name)
        if rgb.width > TARGET_WIDTH:
            rgb = rgb.resize(
                (TARGET_WIDTH, round(rgb.height * TARGET_WIDTH / rgb.width)),
                Image.Resampling.LANCZOS,
            )
        # Colour thumbnails: a recoloured version (warm, cold) is another picture; a resized
        # or re-exported one is not.
        thumb = rgb.resize((32, 32), Image.Resampling.BOX).tobytes()
        twin = next((kept for kept, other in thumbs if difference(thumb, other) < NEAR), None)
        if twin is not None:
            print(f"left out {path.relative_to(root)}: near-identical to {twin}", file=sys.stderr)
            continue
        same_pixels = rgb.size == image.size and image.mode in ("RGB", "L")
        if same_pixels and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            data = path.read_bytes()  # kept as published
            target = out / f"{name}{path.suffix.lower().replace('.jpeg', '.jpg')}"
        else:
            target = out / f"{name}.png"
            rgb.save(target, "PNG")
            data = target.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in digests:
            print(f"left out {path.relative_to(root)}: byte-identical to another", file=sys.stderr)
            target.unlink(missing_ok=True)
            continue
        if not target.exists():
            target.write_bytes(data)
        digests.add(digest)
        thumbs.append((target.name, thumb))
        written += 1
note = f" ({skipped_svgs} SVGs skipped: no rsvg-convert)" if skipped_svgs else ""
print(f"{written} distinct {set_name} wallpapers in {out}{note}")
PY
