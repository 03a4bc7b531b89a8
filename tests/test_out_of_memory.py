"""A batch that does not fit in device memory is embedded in smaller pieces, with the same
result, and the smaller size is kept for the rest of the run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dedup_gpu.encoders import get_spec
from dedup_gpu.encoders.base import Encoder
from dedup_gpu.errors import DeviceUnavailableError
from dedup_gpu.pipeline import embedded_batches


class SmallMemoryEncoder(Encoder):
    """Embeds by channel statistics; runs out of memory above `fits` images at once."""

    def __init__(self, fits: int | None) -> None:
        spec = dataclasses.replace(get_spec("sscd-onnx"), input_size=32, embedding_dim=6)
        super().__init__(spec, torch.device("cpu"))
        self.fits = fits
        self.calls: list[int] = []

    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        self.calls.append(len(pixels))
        if self.fits is not None and len(pixels) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        x = pixels.float()
        features = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1) + 1.0
        return torch.nn.functional.normalize(features, dim=1).numpy()


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for number in range(21):
        path = tmp_path / f"{number:02d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def embed_all(paths: list[str], encoder: Encoder) -> np.ndarray:
    batches = list(embedded_batches(paths, encoder, batch_size=8, workers=0))
    assert [row for batch in batches for row in batch.rows] == list(range(len(paths)))
    return np.concatenate([batch.embeddings for batch in batches])


def test_out_of_memory_halves_the_batch_once_and_gives_the_same_embeddings(
    images: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    expected = embed_all(images, SmallMemoryEncoder(fits=None))
    tight = SmallMemoryEncoder(fits=3)

    embeddings = embed_all(images, tight)

    np.testing.assert_array_equal(embeddings, expected)
    # 8 fails, 4 fails, then pieces of 2 for the rest of the run: no retry per batch.
    assert tight.calls[:3] == [8, 4, 2]
    assert max(tight.calls[3:]) == 2 and tight.calls.count(8) == 1
    assert "out of memory on cpu with 8 images at once; continuing with 4" in caplog.text


def test_an_image_that_never_fits_is_a_clear_device_error(images: list[str]) -> None:
    with pytest.raises(DeviceUnavailableError, match="out of memory embedding a single image"):
        embed_all(images, SmallMemoryEncoder(fits=0))


def test_other_model_errors_are_not_mistaken_for_memory(images: list[str]) -> None:
    class Broken(SmallMemoryEncoder):
        def embed(self, pixels: torch.Tensor) -> np.ndarray:
            raise ValueError("bad input shape")

    with pytest.raises(ValueError, match="bad input shape"):
        embed_all(images, Broken(fits=None))
