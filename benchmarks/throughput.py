"""Where a scan's time goes: decoding, the model, the two together, and similarity search.

    python benchmarks/throughput.py [FOLDER] [--make N] [--size 1024x768] [--stages abcd]
        [--model sscd-onnx] [--device auto | --devices 0,1] [--decode auto|cpu|device]
        [--compile] [--amp auto|bf16|fp16] [--weights FILE | --random-sscd] [--batch-size 64]
        [--workers N] [--search-n 200000] [--threshold 0.30] [--repeat 2]

On the same files, one after the other in one process:
  (a) read + decode + resize only: the scan's DataLoader (worker processes, JPEG draft mode,
      EXIF orientation, the content hash and the verification thumbnail, as `scan` asks for
      them), without the model; with --decode device (the default on a GPU), the workers only
      read, hash and parse headers and the JPEGs are decoded, resized and thumbnailed on the
      device (nvJPEG), as in a scan;
  (b) the model alone on synthetic uint8 tensors of its input size, already in memory (with
      --devices, every device embedding its own stream of batches at once);
  (c) the full pipeline: the same loader feeding the model (`pipeline.embedded_batches`);
  (d) exact similarity search: the self-join `scan` runs, on N synthetic 512-d unit embeddings
      with planted copies.
Prints images/s for each, the ratio of (c) to min(a, b) (the ceiling when decoding and the model
run on different hardware, as on a GPU server), and on a CPU also the ratio of (c) to the
shared-core ceiling 1 / (1/a + 1/b) (decode and model then take turns on the same cores).

With --make N (default when no FOLDER is given), N JPEGs of --size (default 1024x768) are
first made from the photos of ../shared/data/dev-photos.sh (path in $DEV_PHOTOS, default
/tmp/devphotos): resized, cropped and re-encoded at quality 90, so every file is distinct.
--random-sscd stands in for Meta's SSCD file where it cannot be downloaded: a ResNet-50 with a
512-d head and random weights, saved as TorchScript, which costs what the real model costs.
Each stage is run --repeat times and the best run is printed (the first run also pays for the
page cache and warm-up).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def make_jpegs(
    count: int, folder: Path, photos: Path, width: int = 1024, height: int = 768, seed: int = 0
) -> list[str]:
    """`count` distinct width x height JPEGs cut from the photos in `photos` (upscaled where a
    photo is smaller: the cost measured is the file's, not its detail); another `seed` cuts
    others."""
    from PIL import Image, ImageOps

    sources = sorted(p for p in photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not sources:
        raise SystemExit(f"no photos in {photos}: run ../shared/data/dev-photos.sh {photos}")
    rng = np.random.default_rng(seed)
    paths = []
    for number in range(count):
        with Image.open(sources[number % len(sources)]) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            scale = rng.uniform(1.0, 1.3)  # a different crop of each photo every time round
            fitted = ImageOps.fit(image, (round(width * scale), round(height * scale)))
            left = int(rng.integers(0, fitted.width - width + 1))
            top = int(rng.integers(0, fitted.height - height + 1))
            path = folder / f"{number:05d}.jpg"
            fitted.crop((left, top, left + width, top + height)).save(path, quality=90)
        paths.append(str(path))
    return paths


def random_sscd_file(folder: Path) -> str:
    """A TorchScript ResNet-50 with SSCD's 512-d output and random weights."""
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Linear(2048, 512)
    path = folder / "random_sscd_resnet50.torchscript.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(path))
    return str(path)


def best_rate(label: str, run: Callable[[], int], repeat: int) -> float:
    """Runs `run` (which returns the images it handled) `repeat` times; prints and returns the
    best images/s."""
    rates = []
    for attempt in range(repeat):
        started = time.perf_counter()
        images = run()
        elapsed = time.perf_counter() - started
        rates.append(images / elapsed)
        print(f"  {label} run {attempt + 1}: {images} images in {elapsed:.2f} s", flush=True)
    best = max(rates)
    print(f"{label}: {best:,.1f} images/s", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="images to measure on (default: --make)")
    parser.add_argument("--make", type=int, default=None, help="make N JPEGs first")
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the JPEGs made")
    parser.add_argument("--stages", default="abcd", help="which of a, b, c, d to run")
    parser.add_argument("--model", default="sscd-onnx")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--devices", default=None, help="several GPUs: all, or 0,1")
    parser.add_argument("--decode", default="auto", help="auto, cpu or device")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--amp", default="auto", choices=("auto", "bf16", "fp16"), help="CUDA autocast dtype"
    )
    parser.add_argument("--weights", default=None, help="a local weights file for the model")
    parser.add_argument(
        "--random-sscd", action="store_true", help="--model sscd with random ResNet-50 weights"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="default: the scan's default")
    parser.add_argument("--search-n", type=int, default=200_000)
    parser.add_argument("--threshold", type=float, default=0.30)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import torch

    from dedup_gpu.data import default_workers, iterate_batches
    from dedup_gpu.device_decode import finish_batch
    from dedup_gpu.pipeline import decodes_on_device, embedded_batches, open_encoders
    from dedup_gpu.sources import discover
    from dedup_gpu.verify import THUMBNAIL_SIZE

    weights = args.weights
    if args.random_sscd:
        args.model = "sscd"
        weights = random_sscd_file(Path(tempfile.mkdtemp(prefix="random-sscd-")))
    encoders = open_encoders(
        args.model,
        args.device,
        devices=args.devices,
        weights=weights,
        compile_model=args.compile,
    )
    if args.amp != "auto":  # the encoder picks bf16 where the GPU has it; this compares fp16
        for each in encoders:
            if hasattr(each, "_amp_dtype"):
                each._amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    encoder = encoders[0]
    amp = getattr(encoder, "_amp_dtype", None)
    on_device = decodes_on_device(args.decode, encoder.device)
    workers = default_workers() if args.workers is None else args.workers
    size = encoder.spec.input_size
    device_name = (
        torch.cuda.get_device_name(encoder.device)
        if encoder.device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    on_cuda = amp is not None and encoder.device.type == "cuda"
    autocast_note = f"autocast {str(amp).removeprefix('torch.')}; " if on_cuda else ""
    print(
        f"device: {', '.join(str(each.device) for each in encoders)} ({device_name}); "
        f"model {encoder.spec.name} ({size}x{size}){' compiled' if args.compile else ''}; "
        f"{autocast_note}"
        f"batch {args.batch_size}; {workers} decode workers; JPEGs decoded "
        f"{'on ' + str(encoder.device) if on_device else 'by Pillow in the workers'}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    with tempfile.TemporaryDirectory(prefix="throughput-") as scratch:
        if args.folder:
            paths = [file.path for file in discover([args.folder]).files]
        else:
            photos = Path(os.environ.get("DEV_PHOTOS", "/tmp/devphotos"))
            started = time.perf_counter()
            width, height = (int(side) for side in args.size.lower().split("x"))
            paths = make_jpegs(args.make or 2000, Path(scratch), photos, width, height)
            print(
                f"made {len(paths)} {width}x{height} JPEGs in {time.perf_counter() - started:.1f} s"
            )
        sizes = [os.path.getsize(path) for path in paths]
        print(f"files: {len(paths)}, {sum(sizes) / len(paths) / 1000:.0f} KB on average")
        loader_options = {
            "batch_size": args.batch_size,
            "workers": workers,
            "thumbnail_size": THUMBNAIL_SIZE,
            "digests": True,
        }

        def decode_only() -> int:
            decoded = 0
            for batch in iterate_batches(
                paths,
                size,
                pin_memory=encoder.device.type == "cuda",
                defer_jpegs=on_device,
                **loader_options,  # type: ignore[arg-type]
            ):
                if on_device:
                    batch = finish_batch(batch, encoder.device, size, thumbnail_size=THUMBNAIL_SIZE)
                decoded += len(batch.indices)
            synchronize()
            return decoded

        synthetic = torch.randint(0, 256, (args.batch_size, 3, size, size), dtype=torch.uint8)
        batches_for_model = max(4, len(paths) // args.batch_size)

        def synchronize() -> None:
            for each in encoders:
                if each.device.type == "cuda":
                    torch.cuda.synchronize(each.device)

        def model_only() -> int:
            from concurrent.futures import ThreadPoolExecutor

            def stream(each) -> None:
                for _ in range(batches_for_model):
                    each.embed(synthetic)

            with ThreadPoolExecutor(len(encoders)) as threads:
                list(threads.map(stream, encoders))
            synchronize()
            return batches_for_model * args.batch_size * len(encoders)

        def full_pipeline() -> int:
            return sum(
                len(batch.rows)
                for batch in embedded_batches(
                    paths,
                    encoders,
                    decode=args.decode,
                    **loader_options,  # type: ignore[arg-type]
                )
            )

        for each in encoders:
            each.embed(synthetic)  # warm-up: lazy initialisation, kernel selection, compiling
        rates = {}
        for stage, label, run in (
            ("a", "(a) read + decode + resize", decode_only),
            ("b", "(b) model on synthetic tensors", model_only),
            ("c", "(c) full pipeline", full_pipeline),
        ):
            if stage in args.stages:
                rates[stage] = best_rate(label, run, args.repeat)

    if {"a", "b", "c"} <= rates.keys():
        report_ceilings(rates["a"], rates["b"], rates["c"], on_cpu=encoder.device.type == "cpu")
    if "d" in args.stages:
        gpu = (encoder.device.index or 0) if encoder.device.type == "cuda" else None
        search(args.search_n, args.threshold, gpu)


def report_ceilings(decode: float, model: float, pipeline: float, *, on_cpu: bool) -> None:
    ceiling = min(decode, model)
    print(f"(c) / min(a, b) = {pipeline / ceiling:.1%} (ceiling {ceiling:,.1f} images/s)")
    if on_cpu:
        shared = 1.0 / (1.0 / decode + 1.0 / model)
        print(
            f"(c) / shared-core ceiling 1/(1/a + 1/b) = {pipeline / shared:.1%} "
            f"(ceiling {shared:,.1f} images/s)"
        )


def search(count: int, threshold: float, gpu: int | None) -> None:
    from dedup_gpu.index import search_pairs

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((count, 512), dtype=np.float32)
    sources = np.arange(0, count - 1, 10)
    rows[sources + 1] = rows[sources] + 0.5 * rng.standard_normal((len(sources), 512), np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows = rows.astype(np.float16)
    started = time.perf_counter()
    pairs, described = search_pairs(rows, threshold, gpu=gpu)
    elapsed = time.perf_counter() - started
    print(
        f"(d) exact self-join of {count:,} x 512 at {threshold}: {elapsed:.1f} s, "
        f"{count * (count - 1) / 2 / elapsed / 1e9:.2f} G pairs/s, "
        f"{len(pairs):,} pairs ({described.get('method', described['kind'])})"
    )


if __name__ == "__main__":
    main()
