"""The encoder registry's real weight-loading code, exercised with checkpoints made here.

Nothing is fetched from the internet: weights are tiny random models saved in the published file
formats (TorchScript for SSCD, open_clip and torchvision state dicts) and either served from a
loopback HTTP server or passed as --weights paths. Every name lookup other than localhost is
refused by the `offline` fixture, so the tests behave the same on a machine with network access.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dedup_gpu.encoders import availability, get_spec, list_encoders, load_encoder
from dedup_gpu.encoders.base import IMAGENET_MEAN, IMAGENET_STD
from dedup_gpu.encoders.weights import WeightsSource, cache_dir, fetch
from dedup_gpu.errors import ChecksumMismatchError, ModelUnavailableError, UnknownModelError

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
SSCD_FILENAME = "sscd_disc_mixup.torchscript.pt"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes())


def images(size: int, count: int = 3, seed: int = 0) -> torch.Tensor:
    """A uint8 RGB batch [count, 3, size, size], as the data loader hands it to an encoder."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)


def normalised(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean_t) / std_t


def assert_unit_rows(rows: np.ndarray, count: int, dim: int) -> None:
    assert rows.dtype == np.float32
    assert rows.shape == (count, dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Fixtures: network isolation, a loopback weights server, an empty weights cache
# --------------------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """Refuse every host name but the loopback ones, as on a machine without internet."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: no lookup of {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def weights_cache(tmp_path, monkeypatch) -> Path:
    """An empty $DEDUP_GPU_CACHE, as on a machine that never downloaded anything."""
    directory = tmp_path / "dedup-gpu-cache"
    monkeypatch.setenv("DEDUP_GPU_CACHE", str(directory))
    return directory


class LoopbackServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1; records the paths asked for.

    A path in `truncated` is announced with its full Content-Length but only half of it is sent
    before the connection closes, as when a download is cut off.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncated:
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._running = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.url(path)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)


@pytest.fixture
def server(offline):
    loopback = LoopbackServer()
    yield loopback
    loopback.stop()


# --------------------------------------------------------------------------------------------
# 1. Weights download into the user cache
# --------------------------------------------------------------------------------------------

PAYLOAD = b"dedup-gpu test weights " * 4096  # ~94 KB: several reads, still instant


@pytest.mark.parametrize("progress", [False, True], ids=["quiet", "progress-bar"])
@pytest.mark.parametrize("pin", ["full", "prefix"], ids=["full-sha256", "torchvision-prefix"])
def test_pinned_download_is_cached_and_reused_without_network(server, tmp_path, progress, pin):
    digest = sha256(PAYLOAD)
    pinned = digest if pin == "full" else digest[:8]
    source = WeightsSource(
        url=server.serve("/w/model.pt", PAYLOAD), filename="model.pt", sha256=pinned
    )
    cache = tmp_path / "cache"

    path, got = fetch(source, cache, progress=progress)

    assert path == cache / "model.pt"
    assert path.read_bytes() == PAYLOAD
    assert got == digest
    assert sorted(p.name for p in cache.iterdir()) == ["model.pt"]  # no .part, no record
    assert server.requests == ["/w/model.pt"]

    server.stop()
    again, got_again = fetch(source, cache, progress=progress)
    assert (again, got_again) == (path, digest)
    assert server.requests == ["/w/model.pt"]  # the cache answered


def test_cache_dir_follows_dedup_gpu_cache(weights_cache, server):
    source = WeightsSource(
        url=server.serve("/a.pt", PAYLOAD), filename="a.pt", sha256=sha256(PAYLOAD)
    )
    assert cache_dir() == weights_cache
    path, _ = fetch(source, progress=False)
    assert path == weights_cache / "a.pt"


def test_corrupted_download_raises_and_keeps_nothing(server, tmp_path):
    source = WeightsSource(
        url=server.serve("/model.pt", PAYLOAD[:-1] + b"!"),
        filename="model.pt",
        sha256=sha256(PAYLOAD),
    )
    cache = tmp_path / "cache"

    with pytest.raises(ChecksumMismatchError) as caught:
        fetch(source, cache, progress=False)

    assert sha256(PAYLOAD) in str(caught.value)
    assert "--weights" in caught.value.hint
    assert list(cache.iterdir()) == []  # neither model.pt nor model.pt.part


def test_unpinned_download_records_its_digest_and_detects_later_changes(server, tmp_path):
    source = WeightsSource(url=server.serve("/model.pt", PAYLOAD), filename="model.pt")
    cache = tmp_path / "cache"

    path, digest = fetch(source, cache, progress=False)

    assert digest == sha256(PAYLOAD)
    record = cache / "model.pt.sha256"
    assert record.read_text().split() == [digest, "model.pt"]
    assert fetch(source, cache, progress=False) == (path, digest)

    path.write_bytes(PAYLOAD + b"tampered")
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch(source, cache, progress=False)
    assert digest in str(caught.value)
    assert str(path) in caught.value.hint  # tells the user which file to delete
    assert server.requests == ["/model.pt"]  # the altered file was not silently replaced


def test_unreachable_url_raises_model_unavailable_with_a_hint(offline, tmp_path):
    source = WeightsSource(url=f"http://127.0.0.1:{closed_port()}/x.pt", filename="x.pt")
    cache = tmp_path / "cache"

    with pytest.raises(ModelUnavailableError) as caught:
        fetch(source, cache, progress=False)

    assert not isinstance(caught.value, ChecksumMismatchError)
    assert "cannot download" in str(caught.value)
    assert "--weights" in caught.value.hint
    assert str(cache / "x.pt") in caught.value.hint  # where to put a hand-copied file
    assert list(cache.iterdir()) == []


def test_missing_file_on_the_server_raises_model_unavailable(server, tmp_path):
    source = WeightsSource(url=server.url("/gone.pt"), filename="gone.pt")
    with pytest.raises(ModelUnavailableError, match="Not Found"):
        fetch(source, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_cut_off_unpinned_download_is_not_kept(server, tmp_path):
    # The real `sscd` entry has sha256=None, so only the length can reveal a cut-off download.
    source = WeightsSource(url=server.serve("/model.pt", PAYLOAD), filename="model.pt")
    server.truncated.add("/model.pt")
    cache = tmp_path / "cache"

    with pytest.raises(ModelUnavailableError):
        fetch(source, cache, progress=False)
    assert list(cache.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 2. SSCD: a TorchScript file, downloaded into the cache or given with --weights
# --------------------------------------------------------------------------------------------


class TinySSCD(torch.nn.Module):
    """SSCD's interface: ImageNet-normalised float NCHW in, [B, 512] descriptors out."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=4, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=4, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(16, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


@pytest.fixture(scope="module")
def sscd_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sscd") / SSCD_FILENAME
    torch.jit.save(torch.jit.script(TinySSCD().eval()), str(path))
    return path


def sscd_spec(url: str, sha256_pin: str | None):
    """The real `sscd` entry, pointed at another URL: the same loader and download code."""
    spec = get_spec("sscd")
    assert spec.download is not None
    return replace(spec, download=replace(spec.download, url=url, sha256=sha256_pin))


def test_sscd_downloads_on_first_use_then_embeds(server, weights_cache, sscd_file):
    body = sscd_file.read_bytes()
    spec = sscd_spec(server.serve("/sscd/" + SSCD_FILENAME, body), sha256(body))
    assert availability(spec).startswith("downloads on first use from http://127.0.0.1")

    encoder = load_encoder(spec, CPU, progress=False)

    assert encoder.weights_sha256 == sha256(body)
    assert (weights_cache / SSCD_FILENAME).read_bytes() == body
    assert availability(spec) is None  # `dedup-gpu models` now says ready
    assert encoder.spec.input_size == 288 and encoder.spec.embedding_dim == 512

    pixels = images(288)
    rows = encoder.embed(pixels)
    assert_unit_rows(rows, 3, 512)
    np.testing.assert_array_equal(rows, encoder.embed(pixels))  # deterministic
    assert not np.allclose(rows[0], rows[1])  # different images, different descriptors

    # The file's own model on ImageNet-normalised input gives the same descriptors.
    reference = torch.jit.load(str(sscd_file))
    with torch.no_grad():
        expected = F.normalize(reference(normalised(pixels, IMAGENET_MEAN, IMAGENET_STD)), dim=1)
    np.testing.assert_allclose(rows, expected.numpy(), atol=1e-5)

    # A second load reads the cache only.
    server.stop()
    again = load_encoder(spec, CPU, progress=False)
    assert again.weights_sha256 == sha256(body)
    np.testing.assert_allclose(again.embed(pixels), rows, atol=1e-6)


def test_sscd_unpinned_like_the_real_entry(server, weights_cache, sscd_file):
    body = sscd_file.read_bytes()
    spec = sscd_spec(server.serve("/" + SSCD_FILENAME, body), None)
    encoder = load_encoder(spec, CPU, progress=False)
    assert encoder.weights_sha256 == sha256(body)
    record = weights_cache / (SSCD_FILENAME + ".sha256")
    assert record.read_text().split()[0] == sha256(body)


def test_sscd_weights_path_needs_no_download(offline, weights_cache, sscd_file):
    spec = get_spec("sscd")  # the real entry: its URL is never contacted
    assert availability(spec, str(sscd_file)) is None

    encoder = load_encoder("sscd", CPU, weights=str(sscd_file), progress=False)

    assert encoder.weights_sha256 == file_sha256(sscd_file)
    assert_unit_rows(encoder.embed(images(288, count=2)), 2, 512)
    assert not weights_cache.exists()


def test_sscd_download_with_wrong_pinned_hash_is_refused(server, weights_cache, sscd_file):
    spec = sscd_spec(server.serve("/" + SSCD_FILENAME, sscd_file.read_bytes()), "0" * 64)
    with pytest.raises(ChecksumMismatchError):
        load_encoder(spec, CPU, progress=False)
    assert list(weights_cache.iterdir()) == []


def test_sscd_missing_weights_path(offline):
    with pytest.raises(ModelUnavailableError, match="no such file"):
        load_encoder("sscd", CPU, weights="/nonexistent/sscd.pt", progress=False)


@pytest.mark.parametrize("kind", ["junk", "state-dict", "empty"])
def test_sscd_weights_that_are_not_torchscript(offline, tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "junk":
        path.write_bytes(b"<html>404 not found</html>")
    elif kind == "state-dict":
        torch.save(TinySSCD().state_dict(), path)
    else:
        path.write_bytes(b"")

    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder("sscd", CPU, weights=str(path), progress=False)

    message = str(caught.value)
    assert message.startswith(f"{path} is not a loadable TorchScript file")
    assert "\n" not in message  # one line, not a torch traceback
    assert "sscd_disc_mixup.torchscript.pt" in caught.value.hint


def test_cli_reports_bad_sscd_weights_in_one_line(offline, tmp_path):
    from typer.testing import CliRunner

    from dedup_gpu.cli import app

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    result = CliRunner().invoke(
        app,
        [
            "scan",
            str(tmp_path),
            "--model",
            "sscd",
            "--weights",
            str(junk),
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert result.exit_code == 2, result.output
    words = " ".join(result.output.split())  # rich wraps long lines at the terminal width
    assert "error: " in words and "is not a loadable TorchScript file" in words
    assert "hint: pass the sscd_disc_mixup.torchscript.pt file" in words
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------------
# 3. CLIP through open_clip: a local checkpoint, or a pretrained tag from the hub
# --------------------------------------------------------------------------------------------

TINY_CLIP = "dedup-test-tiny-ViT"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A registered few-hundred-KB open_clip model and its checkpoint (open_clip state dict)."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip")
    config = folder / f"{TINY_CLIP}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config)  # open_clip's global registry; fine in a test run
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, device="cpu").eval()
    checkpoint = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return model, checkpoint


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch, offline):
    """HF_HUB_OFFLINE=1 and an empty Hugging Face cache.

    huggingface_hub reads these variables once, at import, so its constants are patched too.
    """
    import huggingface_hub.constants as hf

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HOME", str(home))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(home / "hub"))
    return home


def clip_reference(model, pixels: torch.Tensor) -> np.ndarray:
    import open_clip

    x = normalised(pixels, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    with torch.no_grad():
        return F.normalize(model.encode_image(x), dim=1).numpy()


@pytest.mark.parametrize("how", ["checkpoint-in-name", "weights-option"])
def test_clip_loads_a_local_checkpoint(empty_hf_cache, tiny_clip, how):
    model, checkpoint = tiny_clip
    if how == "checkpoint-in-name":
        encoder = load_encoder(f"clip:{TINY_CLIP}:{checkpoint}", CPU, progress=False)
    else:
        encoder = load_encoder(f"clip:{TINY_CLIP}", CPU, weights=str(checkpoint), progress=False)

    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    assert encoder.spec.input_size == size
    assert encoder.spec.embedding_dim == TINY_CLIP_CONFIG["embed_dim"]
    assert encoder.weights_sha256 == file_sha256(checkpoint)

    pixels = images(size)
    rows = encoder.embed(pixels)
    assert_unit_rows(rows, 3, TINY_CLIP_CONFIG["embed_dim"])
    np.testing.assert_array_equal(rows, encoder.embed(pixels))
    # The checkpoint's weights were loaded (not a fresh random init): same output as the model.
    np.testing.assert_allclose(rows, clip_reference(model, pixels), atol=1e-5)


def test_clip_checkpoint_of_another_architecture(empty_hf_cache, tiny_clip):
    _, checkpoint = tiny_clip
    other = checkpoint.with_name("other.pt")
    torch.save(TinySSCD().state_dict(), other)
    with pytest.raises(ModelUnavailableError, match=f"cannot load clip:{TINY_CLIP}"):
        load_encoder(f"clip:{TINY_CLIP}", CPU, weights=str(other), progress=False)


def test_clip_pretrained_tag_offline_with_empty_cache(empty_hf_cache):
    name = "clip:ViT-B-32:laion2b_s34b_b79k"
    assert "Hugging Face hub" in availability(get_spec(name))

    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(name, CPU, progress=False)

    assert time.monotonic() - started < 20
    assert str(caught.value).startswith(f"cannot load {name}: ")
    assert "--weights" in caught.value.hint
    assert not any(empty_hf_cache.rglob("*.bin")) and not any(empty_hf_cache.rglob("*.safetensors"))


def test_clip_load_error_message_is_not_repr_quoted(empty_hf_cache):
    name = "clip:ViT-B-32:laion2b_s34b_b79k"
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(name, CPU, progress=False)
    cause = str(caught.value.__cause__).splitlines()[0]
    assert str(caught.value) == f"cannot load {name}: {cause}"


def test_clip_unknown_pretrained_tag(empty_hf_cache):
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder("clip:ViT-B-32:no_such_tag", CPU, progress=False)
    message = str(caught.value)
    assert "no pretrained tag 'no_such_tag'" in message
    assert "laion2b_s34b_b79k" in message  # lists the tags that exist


def test_clip_unknown_architecture_and_missing_tag(empty_hf_cache):
    with pytest.raises(ModelUnavailableError, match="open_clip has no model 'NoSuchNet'"):
        load_encoder("clip:NoSuchNet:x", CPU, progress=False)
    with pytest.raises(ModelUnavailableError, match="no pretrained tag or checkpoint"):
        load_encoder("clip:ViT-B-32", CPU, progress=False)


# --------------------------------------------------------------------------------------------
# 4. torchvision classifiers: pooled features from a state dict
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path_factory.mktemp("torchvision") / "resnet18-random.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_torchvision_state_dict_gives_pooled_features(offline, empty_torch_home, resnet18_file):
    model, path = resnet18_file
    encoder = load_encoder("resnet18", CPU, weights=str(path), progress=False)

    assert encoder.spec.embedding_dim == 512  # the 1000-way classifier is gone
    assert encoder.weights_sha256 == file_sha256(path)
    pixels = images(224, count=2)
    rows = encoder.embed(pixels)
    assert_unit_rows(rows, 2, 512)

    features = torch.nn.Sequential(*list(model.children())[:-1])  # everything before fc
    with torch.no_grad():
        expected = F.normalize(
            features(normalised(pixels, IMAGENET_MEAN, IMAGENET_STD)).flatten(1), dim=1
        )
    np.testing.assert_allclose(rows, expected.numpy(), atol=1e-4)
    assert not empty_torch_home.exists()  # nothing downloaded


def test_torchvision_state_dict_of_another_architecture(offline, tmp_path):
    import torchvision

    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder("resnet18", CPU, weights=str(path), progress=False)
    assert str(caught.value).startswith(f"{path} is not a resnet18 state dict")
    assert "resnet18" in caught.value.hint


def test_torchvision_empty_weights_file(offline, tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(ModelUnavailableError):
        load_encoder("resnet18", CPU, weights=str(path), progress=False)


def test_torchvision_offline_download_fails_cleanly(offline, empty_torch_home):
    spec = get_spec("resnet18")
    assert availability(spec).startswith("downloads on first use from https://download.pytorch")

    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder("resnet18", CPU, progress=False)

    assert not isinstance(caught.value, ChecksumMismatchError)
    assert "cannot download https://download.pytorch.org/" in str(caught.value)
    assert "--weights" in caught.value.hint
    checkpoints = empty_torch_home / "hub" / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []


def test_torchvision_cached_file_with_wrong_content(offline, empty_torch_home):
    from dedup_gpu.encoders.torchvision_cnn import weights_source

    source = weights_source("resnet18")
    cached = empty_torch_home / "hub" / "checkpoints" / source.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a half-copied file")
    with pytest.raises(ChecksumMismatchError) as caught:
        load_encoder("resnet18", CPU, progress=False)
    assert str(cached) in caught.value.hint


# --------------------------------------------------------------------------------------------
# 5. The registry
# --------------------------------------------------------------------------------------------


def test_unknown_model_name():
    with pytest.raises(UnknownModelError) as caught:
        get_spec("nonsense")
    assert "'nonsense'" in str(caught.value)
    assert "dedup-gpu models" in caught.value.hint
    assert "sscd-onnx" in caught.value.hint


def test_family_specs_parse():
    clip = get_spec("clip:ViT-B-32")
    assert (clip.family, clip.arch, clip.pretrained) == ("clip", "ViT-B-32", "")
    tagged = get_spec("clip:ViT-B-32:openai")
    assert (tagged.name, tagged.arch, tagged.pretrained) == (
        "clip:ViT-B-32:openai",
        "ViT-B-32",
        "openai",
    )
    resnet = get_spec("torchvision:resnet34")
    assert (resnet.name, resnet.family, resnet.arch) == (
        "torchvision:resnet34",
        "torchvision",
        "resnet34",
    )
    assert resnet.embedding_dim is None  # read from the model at load
    with pytest.raises(UnknownModelError):
        get_spec("torchvision:not_a_net")


def test_every_entry_is_complete():
    specs = list_encoders()
    assert len({spec.name for spec in specs}) == len(specs)
    for spec in specs:
        assert get_spec(spec.name) == spec
        assert spec.licence.strip(), spec.name
        assert spec.card.startswith("models/") and spec.card.endswith(".md"), spec.name
        assert spec.input_size > 0, spec.name
        assert 0 < spec.default_threshold <= 1, spec.name
        assert spec.family in ("onnx", "sscd", "clip", "torchvision"), spec.name


def test_every_model_card_exists():
    if not any((REPO / "models").glob("*.md")):
        pytest.skip("models/*.md are not written yet")
    missing = sorted({spec.card for spec in list_encoders() if not (REPO / spec.card).is_file()})
    assert missing == []


# --------------------------------------------------------------------------------------------
# 6. `dedup-gpu models`
# --------------------------------------------------------------------------------------------


def models_json() -> dict[str, dict]:
    from typer.testing import CliRunner

    from dedup_gpu.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_models_command_lists_what_runs_here(offline, weights_cache, empty_torch_home, sscd_file):
    rows = models_json()

    assert set(rows) == {spec.name for spec in list_encoders()}
    assert rows["sscd-onnx"]["available"] is True
    assert rows["sscd-onnx"]["status"] == "ready"
    assert rows["sscd-onnx"]["default"] is True
    assert [name for name, row in rows.items() if row["default"]] == ["sscd-onnx"]
    assert rows["sscd"]["available"] is False
    assert rows["sscd"]["status"].startswith("downloads on first use from https://")
    assert rows["resnet18"]["available"] is False
    for row in rows.values():
        assert row["licence"] and row["card"]

    # Once the SSCD file is in the cache, `models` says so.
    weights_cache.mkdir(parents=True)
    shutil.copy(sscd_file, weights_cache / SSCD_FILENAME)
    assert models_json()["sscd"]["available"] is True
