"""Decoding JPEGs where the model runs, several devices at once, and compiled models.

On a GPU server JPEGs are decoded by nvJPEG in batches; here the same code runs with
torchvision's CPU decoder on the "device" cpu, so everything but the CUDA call itself is tested.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import skimage_photo, write_bad_files
from PIL import Image

from dedup_gpu import scan
from dedup_gpu.data import DecodeError, decode_image, iterate_batches, jpeg_header
from dedup_gpu.device import resolve_devices
from dedup_gpu.device_decode import finish_batch
from dedup_gpu.encoders.base import Encoder, TorchEncoder, compile_encoder
from dedup_gpu.errors import BadArgumentError, DeviceUnavailableError
from dedup_gpu.pipeline import embedded_batches, open_encoder

CPU = torch.device("cpu")


def asymmetric_photo() -> Image.Image:
    """A photo with a red block top-left and a blue block bottom-right, so any wrong turn or
    flip moves colour to where it does not belong."""
    image = Image.open(skimage_photo("chelsea.png")).convert("RGB").resize((120, 80))
    image.paste((255, 0, 0), (0, 0, 40, 20))
    image.paste((0, 0, 255), (90, 60, 120, 80))
    return image


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def decode_both_ways(paths: list[str], size: int = 64) -> tuple[dict, dict]:
    """Per index: (pixels, thumbnail, digest, width, height) from Pillow in the workers, and
    from the device path; plus the failures of each."""

    def collect(defer: bool) -> dict:
        out: dict = {"failures": {}}
        for batch in iterate_batches(
            paths,
            size,
            batch_size=4,
            workers=0,
            thumbnail_size=48,
            digests=True,
            defer_jpegs=defer,
        ):
            if defer:
                batch = finish_batch(batch, CPU, size, thumbnail_size=48)
            assert not batch.jpegs
            for at, index in enumerate(batch.indices.tolist()):
                out[index] = (
                    batch.pixels[at],
                    batch.thumbnails[at],
                    batch.digests[at],
                    int(batch.widths[at]),
                    int(batch.heights[at]),
                )
            out["failures"].update(batch.failures)
        return out

    return collect(False), collect(True)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_the_device_as_pillow_applies_it(
    tmp_path: Path, orientation: int
) -> None:
    path = tmp_path / f"turned-{orientation}.jpg"
    path.write_bytes(jpeg_with_orientation(asymmetric_photo(), orientation))
    header = jpeg_header(path.read_bytes())
    assert header is not None and header.orientation == orientation

    workers, device = decode_both_ways([str(path)])
    on_cpu, on_device = workers[0], device[0]
    assert on_device[3:] == on_cpu[3:]  # the displayed width and height
    assert on_device[3:] == ((80, 120) if orientation >= 5 else (120, 80))
    difference = (on_device[0].float() - on_cpu[0].float()).abs().mean().item()
    assert difference < 4.0, difference  # a wrong turn moves whole blocks of colour: > 40


def test_every_file_decodes_on_the_device_or_falls_back_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    reasons = write_bad_files(folder)
    for name in ("rocket.jpg", "chelsea.png", "coffee.png"):
        shutil.copyfile(skimage_photo(name), folder / name)
    Image.open(skimage_photo("coffee.png")).convert("CMYK").save(folder / "cmyk.jpg")
    Image.open(skimage_photo("camera.png")).convert("L").save(folder / "grey.jpg")
    # A JPEG whose header is fine but whose scan data is cut: the device fails, Pillow reports it.
    good = skimage_photo("rocket.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) * 2 // 3])
    paths = sorted(str(path) for path in folder.iterdir() if path.name != "bomb.png")

    workers, device = decode_both_ways(paths)

    decoded = sorted(key for key in workers if key != "failures")
    assert sorted(key for key in device if key != "failures") == decoded
    assert device["failures"] == workers["failures"]
    failed = {Path(paths[index]).name: reason for index, reason in device["failures"].items()}
    for name, word in reasons.items():
        if name not in ("bomb.png", "empty.jpg"):  # discovery, not decoding, skips empty files
            assert word in failed[name]
    assert "truncated" in failed["cut.jpg"]
    for index in decoded:
        pixels, thumbnail, digest, width, height = device[index]
        assert digest == workers[index][2]
        assert (width, height) == workers[index][3:]
        assert (pixels.float() - workers[index][0].float()).abs().mean() < 3.0
        with Image.open(io.BytesIO(thumbnail)) as small:
            assert max(small.size) == min(48, max(width, height))


def test_a_whole_batch_of_bad_jpegs_still_flows_through(tmp_path: Path) -> None:
    good = skimage_photo("rocket.jpg").read_bytes()
    paths = []
    for number in range(5):
        path = tmp_path / f"cut-{number}.jpg"
        path.write_bytes(good[: len(good) // 3 + number])
        paths.append(str(path))
    _, device = decode_both_ways(paths)
    assert len(device["failures"]) == 5
    assert all("truncated" in reason for reason in device["failures"].values())


def test_a_scan_decoding_on_the_device_finds_the_same_copies(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("rocket.jpg", "chelsea.png", "coffee.png", "astronaut.png"):
        image = Image.open(skimage_photo(name)).convert("RGB")
        image.save(folder / f"{Path(name).stem}.jpg", quality=92)
        width, height = image.size
        image.crop((width // 10, height // 10, width, height)).save(
            folder / f"{Path(name).stem}-crop.jpg", quality=80
        )
    encoder = open_encoder("sscd-onnx", "cpu")

    def groups(decode: str) -> set[frozenset[str]]:
        report = scan([str(folder)], encoder=encoder, decode=decode).report
        assert report.errors == []
        return {
            frozenset(member.path for member in (group.keep, *group.duplicates))
            for group in report.groups
        }

    on_device = groups("device")
    assert on_device == groups("cpu")
    assert len(on_device) == 4


def test_embeddings_of_the_two_decode_paths_agree(photo_dir: Path) -> None:
    encoder = open_encoder("sscd-onnx", "cpu")
    paths = sorted(str(path) for path in photo_dir.iterdir())

    def embed(decode: str) -> np.ndarray:
        batches = embedded_batches(paths, encoder, batch_size=3, workers=0, decode=decode)
        rows = {}
        for batch in batches:
            rows.update(zip(batch.rows, batch.embeddings.astype(np.float32), strict=True))
        return np.stack([rows[index] for index in range(len(paths))])

    agreement = np.sum(embed("cpu") * embed("device"), axis=1)
    assert agreement.min() > 0.97, agreement


class ChannelStatsEncoder(Encoder):
    """A cheap deterministic encoder: channel means and spreads."""

    def __init__(self) -> None:
        from dataclasses import replace

        from dedup_gpu.encoders import get_spec

        spec = replace(get_spec("sscd-onnx"), input_size=32, embedding_dim=6)
        super().__init__(spec, CPU)
        self.batches = 0

    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        self.batches += 1
        x = pixels.float()
        features = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1) + 1.0
        return torch.nn.functional.normalize(features, dim=1).numpy()


def test_two_devices_give_the_results_of_one_and_share_the_work(photo_dir: Path) -> None:
    write_bad_files(photo_dir)
    (photo_dir / "bomb.png").unlink()
    paths = sorted(str(path) for path in photo_dir.iterdir())
    one = ChannelStatsEncoder()
    two = [ChannelStatsEncoder(), ChannelStatsEncoder()]

    def run(encoder: Encoder | list[Encoder]) -> list:
        return list(embedded_batches(paths, encoder, batch_size=2, workers=0))

    alone, shared = run(one), run(two)
    assert [batch.rows for batch in shared] == [batch.rows for batch in alone]
    assert [batch.failures for batch in shared] == [batch.failures for batch in alone]
    for a, b in zip(alone, shared, strict=True):
        assert np.array_equal(a.embeddings, b.embeddings)
    assert two[0].batches > 0 and two[1].batches > 0
    assert two[0].batches + two[1].batches == one.batches


def test_a_scan_on_two_replicas_reports_both_devices_and_the_same_groups(
    photo_dir: Path,
) -> None:
    shutil.copyfile(photo_dir / "rocket.jpg", photo_dir / "rocket (copy).jpg")
    Image.open(photo_dir / "chelsea.png").convert("RGB").save(photo_dir / "chelsea.jpg")
    replicas = [open_encoder("sscd-onnx", "cpu"), open_encoder("sscd-onnx", "cpu")]
    single = scan([str(photo_dir)], encoder=replicas[0], batch_size=2)
    double = scan([str(photo_dir)], encoder=replicas, batch_size=2)
    assert double.report.device == "cpu,cpu"
    assert np.array_equal(double.embeddings, single.embeddings)
    assert double.report.to_dict()["groups"] == single.report.to_dict()["groups"]


@pytest.mark.parametrize(
    ("devices", "error", "words"),
    [
        ("cpu,cpu", BadArgumentError, "more than once"),
        ("", BadArgumentError, "empty"),
        ("gpu7", BadArgumentError, "unknown device"),
    ],
)
def test_bad_device_lists_are_one_clear_error(devices: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        resolve_devices(devices)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on CPU-only machines")
def test_all_gpus_on_a_machine_without_one_is_a_device_error() -> None:
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        resolve_devices("all")


def test_bad_decode_and_device_arguments_fail_before_any_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "not-read")
    with pytest.raises(BadArgumentError, match="decode mode"):
        scan([missing], encoder=ChannelStatsEncoder(), decode="gpu-please")
    with pytest.raises(BadArgumentError, match="both given"):
        scan([missing], device="cpu", devices="0,1")

    import dedup_gpu.pipeline as pipeline

    monkeypatch.setattr(pipeline, "can_decode_on", lambda device: False)
    with pytest.raises(DeviceUnavailableError, match="cannot decode JPEGs"):
        scan([missing], encoder=ChannelStatsEncoder(), decode="device")


def test_the_cli_takes_decode_devices_and_compile(photo_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dedup_gpu.cli import app

    report = tmp_path / "report.json"
    arguments = ["scan", str(photo_dir), "--decode", "device", "--out", str(report), "-q"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert report.exists()

    result = CliRunner().invoke(app, ["scan", str(photo_dir), "--compile", "--device", "cpu"])
    assert result.exit_code == 2
    assert "--compile works on PyTorch models" in result.output

    result = CliRunner().invoke(app, ["scan", str(photo_dir), "--devices", "cpu,cpu"])
    assert result.exit_code == 2
    assert "more than once" in result.output


@pytest.mark.slow
def test_a_compiled_model_embeds_as_the_eager_one() -> None:
    from dataclasses import replace

    from dedup_gpu.encoders import get_spec

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    spec = replace(get_spec("resnet18"), name="tiny-random", input_size=32, embedding_dim=8)
    eager = TorchEncoder(spec, CPU, module)
    compiled = compile_encoder(TorchEncoder(spec, CPU, module))
    pixels = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    expected = eager.embed(pixels)
    assert np.allclose(compiled.embed(pixels), expected, atol=1e-5)
    assert np.allclose(compiled.embed(pixels[:3]), expected[:3], atol=1e-5)  # another shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_decodes_as_the_cpu_path_and_falls_back_per_file(tmp_path: Path) -> None:
    from dedup_gpu.device_decode import can_decode_on

    cuda = torch.device("cuda")
    assert can_decode_on(cuda)
    folder = tmp_path / "mixed"
    write_bad_files(folder)
    (folder / "bomb.png").unlink()
    for orientation in (1, 6, 8):
        (folder / f"turned-{orientation}.jpg").write_bytes(
            jpeg_with_orientation(asymmetric_photo(), orientation)
        )
    Image.open(skimage_photo("coffee.png")).convert("CMYK").save(folder / "cmyk.jpg")
    paths = sorted(str(path) for path in folder.iterdir())
    expected = {}
    for index, path in enumerate(paths):
        with contextlib.suppress(DecodeError):
            expected[index] = decode_image(path, 64).pixels
    batch = next(iterate_batches(paths, 64, batch_size=len(paths), workers=0, defer_jpegs=True))
    done = finish_batch(batch, cuda, 64, thumbnail_size=48)
    assert done.pixels.device.type == "cuda"
    assert sorted(done.indices.tolist()) == sorted(expected)
    for at, index in enumerate(done.indices.tolist()):
        got = done.pixels[at].permute(1, 2, 0).cpu().numpy().astype(float)
        assert np.abs(got - expected[index]).mean() < 4.0


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_give_the_embeddings_of_one(photo_dir: Path) -> None:
    one = scan([str(photo_dir)], device="cuda:0", decode="cpu", batch_size=2)
    two = scan([str(photo_dir)], devices="0,1", decode="cpu", batch_size=2)
    assert two.report.device == "cuda:0,cuda:1"
    assert np.array_equal(one.embeddings, two.embeddings)
