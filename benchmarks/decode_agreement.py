"""How closely embeddings agree when JPEGs are decoded on the device instead of by Pillow.

    python benchmarks/decode_agreement.py FOLDER [--model sscd-onnx] [--device auto]

The same files are embedded twice: decoded by Pillow in the worker processes (JPEG draft mode,
then bilinear resizing), and decoded where the model runs (nvJPEG on a GPU; torchvision's
libjpeg-turbo decoder on a CPU), then resized with antialiased bilinear interpolation. Prints
the cosine between the two embeddings of each image (minimum, 1st percentile, median) and how
many images fell back to Pillow on the device path. A copy scoring near the threshold could
cross it when the paths disagree, so the spread matters, not only the median.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--model", default="sscd-onnx")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from dedup_gpu.data import jpeg_header
    from dedup_gpu.pipeline import embedded_batches, open_encoder
    from dedup_gpu.sources import discover

    encoder = open_encoder(args.model, args.device)
    paths = [file.path for file in discover([args.folder]).files]
    deferred = 0
    for path in paths:
        with open(path, "rb") as handle:
            deferred += jpeg_header(handle.read()) is not None

    def embed(decode: str) -> dict[int, np.ndarray]:
        rows: dict[int, np.ndarray] = {}
        for batch in embedded_batches(paths, encoder, batch_size=args.batch_size, decode=decode):
            rows.update(zip(batch.rows, batch.embeddings.astype(np.float32), strict=True))
        return rows

    by_pillow, on_device = embed("cpu"), embed("device")
    common = sorted(by_pillow.keys() & on_device.keys())
    cosines = np.array([float(by_pillow[row] @ on_device[row]) for row in common])
    print(
        f"{args.model} on {encoder.device}: {len(paths)} files, {deferred} JPEGs decoded on the "
        f"device, {len(common)} embedded both ways"
    )
    print(
        f"cosine between the two decodes: min {cosines.min():.4f}, "
        f"1st percentile {np.percentile(cosines, 1):.4f}, median {np.median(cosines):.4f}"
    )


if __name__ == "__main__":
    main()
