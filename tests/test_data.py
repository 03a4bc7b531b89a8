"""Decoding: every odd-but-valid image becomes sensible RGB; every bad file becomes a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import skimage_photo, write_bad_files
from PIL import Image

from dedup_gpu.data import DecodeError, decode_image, iterate_batches


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # A landscape sensor image tagged "rotate 90 CW to display" (orientation 6), as phones save.
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :100] = (255, 0, 0)  # left half red
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)

    decoded = decode_image(str(tmp_path / "phone.jpg"), None)

    assert (decoded.info.width, decoded.info.height) == (100, 200)
    assert decoded.pixels.shape == (200, 100, 3)
    top, bottom = decoded.pixels[20, 50], decoded.pixels[180, 50]
    assert top[0] > 200 and top[1] < 60  # the red half is on top once displayed upright
    assert bottom[0] < 60


def test_modes_are_converted_to_rgb(tmp_path: Path) -> None:
    photo = Image.open(skimage_photo("astronaut.png")).convert("RGB")
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    photo.convert("L").save(tmp_path / "grey.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    sixteen = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")

    for name in ("cmyk.jpg", "grey.png", "palette.png", "sixteen.png"):
        decoded = decode_image(str(tmp_path / name), 64)
        assert decoded.pixels.shape == (64, 64, 3), name
        assert decoded.pixels.dtype == np.uint8
        assert (decoded.info.width, decoded.info.height) == photo.size

    sixteen_rgb = decode_image(str(tmp_path / "sixteen.png"), None).pixels
    grey_rgb = decode_image(str(tmp_path / "grey.png"), None).pixels
    # 16-bit data is scaled to 8 bits, not clipped to white.
    assert np.abs(sixteen_rgb.astype(int) - grey_rgb.astype(int)).max() <= 1


def test_alpha_is_composited_on_white_and_animation_uses_first_frame(tmp_path: Path) -> None:
    transparent = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    transparent.paste((0, 0, 255, 255), (10, 10, 30, 30))
    transparent.save(tmp_path / "logo.png")
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "lime", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)

    logo = decode_image(str(tmp_path / "logo.png"), None).pixels
    assert tuple(logo[0, 0]) == (255, 255, 255)
    assert tuple(logo[20, 20]) == (0, 0, 255)
    anim = decode_image(str(tmp_path / "anim.gif"), None).pixels
    assert anim[16, 16, 0] > 200 and anim[16, 16, 2] < 50  # red, the first frame


def test_large_jpeg_is_decoded_at_reduced_scale_with_its_true_size(tmp_path: Path) -> None:
    big = Image.open(skimage_photo("astronaut.png")).convert("RGB").resize((4096, 4096))
    big.save(tmp_path / "big.jpg", quality=90)

    decoded = decode_image(str(tmp_path / "big.jpg"), 256)

    assert decoded.pixels.shape == (256, 256, 3)
    assert (decoded.info.width, decoded.info.height) == (4096, 4096)


def test_every_bad_file_gets_a_reason(tmp_path: Path) -> None:
    expected = write_bad_files(tmp_path)
    for name, word in expected.items():
        if name == "empty.jpg":
            continue  # discovery reports empty files before decoding
        with pytest.raises(DecodeError, match=word):
            decode_image(str(tmp_path / name), 64, max_pixels=10_000_000)


def test_a_batch_of_only_bad_files_flows_through_worker_processes(tmp_path: Path) -> None:
    write_bad_files(tmp_path)
    bad = sorted(str(p) for p in tmp_path.iterdir() if p.name != "empty.jpg")
    good = str(skimage_photo("coffee.png"))
    paths = [*bad, good]

    batches = list(
        iterate_batches(paths, 32, batch_size=len(bad), workers=2, max_pixels=10_000_000)
    )

    assert [len(b.indices) for b in batches] == [0, 1]
    assert {index for b in batches for index, _ in b.failures} == set(range(len(bad)))
    assert batches[1].pixels.shape == (1, 3, 32, 32)
    assert batches[1].pixels.dtype.is_floating_point is False


def test_max_pixels_decides_what_counts_as_a_bomb(tmp_path: Path) -> None:
    # 90 MP: above Pillow's warning threshold (89.5 MP), below the default --max-pixels.
    Image.new("L", (9500, 9500)).save(tmp_path / "plan.png")

    assert decode_image(str(tmp_path / "plan.png"), 64).info.width == 9500
    with pytest.raises(DecodeError, match="exceeds the limit of 90000000"):
        decode_image(str(tmp_path / "plan.png"), 64, max_pixels=90_000_000)


class _Leftover:
    """Stands for an object left over from an earlier scan (an onnxruntime session, say) whose
    destructor must run in the process that made it: it writes down where it ran."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.cycle = self  # only the garbage collector frees it

    def __del__(self) -> None:
        import os

        with open(self.record, "a") as handle:
            handle.write(f"{os.getpid()}\n")


def test_decode_workers_never_free_what_the_scan_process_left_behind(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import os

    import dedup_gpu.data as data

    original_init = data._worker_init

    def collecting_init(number: int, **options: int) -> None:  # its collector runs at once
        original_init(number, **options)
        gc.collect()

    monkeypatch.setattr(data, "_worker_init", collecting_init)
    record = tmp_path / "freed-in.txt"
    paths = sorted(str(path) for path in photo_dir.iterdir())
    gc.disable()  # keep the leftover until the loader starts, as a busy process might
    try:
        _Leftover(record)
        batches = list(iterate_batches(paths, 32, batch_size=2, workers=2))
    finally:
        gc.enable()
    gc.collect()
    assert sum(len(batch.indices) for batch in batches) == len(paths)
    assert record.read_text().split() == [str(os.getpid())]
