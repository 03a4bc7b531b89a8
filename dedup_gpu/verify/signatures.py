"""Cheap per-image signatures that put each image's likely copies first among its look-alikes,
so that grouping can verify a few candidates per image however many look alike.

The embedding alone cannot do it: among fills of one form template, another fill scores up to
0.98 and the fill's own rescan 0.6-0.8 (the rescan moves the embedding more than another name
in a box does). So:

- **Pages** (one cluster of look-alike pages at a time) are registered once each to one page of
  the cluster (ORB keypoints and RANSAC, as verification does), their pen strokes resampled into
  that page's frame, and the strokes that most pages share, the printed template, taken away
  (a per-pixel median). What is left is the filled-in content; a rescan leaves the same content,
  another fill other content. Pages that do not register to the cluster's first anchor page
  (rescans, whose strokes a scan thickened, often do not) try later anchors, whose frames are
  registered to the first one's, so every page of a form is laid out in one frame. What most
  fills share (their mean content and its 8 main directions of variation: which boxes are
  usually filled, how a scan thickens strokes) is then taken away too. Signatures are compared
  by a dot product.
- **Other images** get their colour layout shrunk to a 12 x 12 grid, normalised so that
  brightness, contrast and saturation edits cancel, in each of the eight turns and mirrors; the
  best of the eight is the similarity.

Both are arrays computed once per image, compared with batched products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..index import Pairs, import_faiss
from . import transforms
from .alignment import fit_similarity
from .documents import to_detail
from .settings import VerifySettings
from .thumbnails import Thumbnail

PAGE_SCALE = 0.25  # page signatures are strokes at a quarter of the document rendering
TEMPLATE_SAMPLE = 64  # pages a cluster's template (per-pixel median) is taken over, at most
LAYOUT_GRID = 12
ANCHORS = 24  # anchor pages tried per cluster of pages
COMMON_COMPONENTS = 8  # main directions of fills' content taken away, at most
PAGES_PER_COMPONENT = 32  # registered pages needed per direction taken away
COMPONENT_SAMPLE = 256  # pages those directions are found over, at most
VOTING_DESCRIPTORS = 500  # ORB descriptors per image that vote
VOTING_NEIGHBOURS = 8  # nearest descriptors looked at per descriptor (some are the image's own)
VOTE_DISTANCE = 64  # bits (of 256): farther than this is no match
EXACT_VOTING_LIMIT = 50_000  # descriptors searched exactly; beyond, over an inverted file


def _small_grid(page: Thumbnail) -> tuple[np.ndarray, tuple[int, int]]:
    """The map from a page's keypoint (thumbnail) pixels to its signature grid, and that grid's
    (height, width)."""
    height, width = (round(side * PAGE_SCALE) for side in page.detail_shape)
    to_small = transforms.grid_scale(page.detail_shape, (height, width)) @ to_detail(page)
    return to_small, (height, width)


def page_signatures(
    pages: Sequence[Thumbnail],
    reference: int,
    settings: VerifySettings,
    frame: tuple[Thumbnail, np.ndarray] | None = None,
) -> list[np.ndarray | None]:
    """Filled-in content of each page of one cluster, registered to `pages[reference]`: unit
    float32 vectors, comparable by dot product; None for a page that does not register or has
    nothing on it beyond the shared template. With `frame` (a page and the map from the
    reference's keypoints to its keypoints), the content is laid out in that page's grid, so
    that signatures registered to two anchors of one form can be compared too."""
    import cv2

    anchor = pages[reference]
    to_small, (height, width) = _small_grid(anchor)
    strokes: list[np.ndarray | None] = []
    for page in pages:
        matrix = (
            np.eye(3)
            if page is anchor
            else fit_similarity(anchor.keypoints, page.keypoints, settings)[0]
        )
        if matrix is None or not page.has_detail:
            strokes.append(None)
            continue
        page_to_small = to_small @ matrix @ transforms.inverse(to_detail(page))
        # Blurred to the target's pixel size first, so the warp does not alias thin strokes.
        blurred = cv2.GaussianBlur(page.ink().astype(np.float32), (0, 0), 0.5 / PAGE_SCALE)
        strokes.append(cv2.warpAffine(blurred, page_to_small[:2], (width, height)))
    # A page of another form also registers (forms share boxes and rules), but most of its ink
    # then lies off the anchor's: such a page belongs to another anchor's cluster.
    own = strokes[reference]
    assert own is not None
    near_anchor = cv2.dilate(own, np.ones((3, 3), np.uint8))
    for slot, warped in enumerate(strokes):
        if warped is not None and slot != reference:
            shared = float(np.minimum(warped, near_anchor).sum()) / max(float(warped.sum()), 1.0)
            if shared < settings.signature_same_template:
                strokes[slot] = None
    registered = [s for s in strokes if s is not None]
    if len(registered) < 3:
        return [None] * len(pages)
    step = max(1, len(registered) // TEMPLATE_SAMPLE)
    template = np.median(np.stack(registered[::step]), axis=0)
    # A stroke a pixel off its place in the template is still the template's.
    template = cv2.dilate(template, np.ones((3, 3), np.uint8))
    if frame is not None:
        to_frame, frame_shape = _small_grid(frame[0])
        anchor_to_frame = to_frame @ frame[1] @ transforms.inverse(to_small)
    signatures: list[np.ndarray | None] = []
    for warped in strokes:
        if warped is None:
            signatures.append(None)
            continue
        content = np.clip(warped - template - settings.signature_ink_margin, 0, None)
        if frame is not None:
            content = cv2.warpAffine(content, anchor_to_frame[:2], frame_shape[::-1])
        vector = cv2.GaussianBlur(content, (0, 0), 1.0).ravel()
        norm = float(np.linalg.norm(vector))
        signatures.append(vector / norm if norm > settings.signature_min_content else None)
    return signatures


def layout_signature(image: Thumbnail) -> np.ndarray:
    """[8, LAYOUT_GRID**2 * 3] float32: the colour layout in each turn and mirror, luma centred
    and scaled to unit spread, chroma scaled about grey, each of the 8 rows a unit vector."""
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(image.colour), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    grid = cv2.resize(ycc, (LAYOUT_GRID, LAYOUT_GRID), interpolation=cv2.INTER_AREA)
    luma = grid[..., 0] - grid[..., 0].mean()
    luma /= max(float(luma.std()), 1.0)
    chroma = grid[..., 1:] - 128.0
    chroma /= max(float(np.sqrt((chroma**2).sum(axis=2).mean())), 4.0)
    planes = np.concatenate([luma[..., None], chroma], axis=2)
    versions = []
    for mirrored in (False, True):
        seen = planes[:, ::-1] if mirrored else planes
        for turns in range(4):
            vector = np.rot90(seen, -turns).ravel()
            versions.append(vector / max(float(np.linalg.norm(vector)), 1e-6))
    return np.stack(versions).astype(np.float32)


def layout_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Best similarity of two layout signatures over the turns and mirrors of the first."""
    return float((first @ second[0]).max())


def rank_by_signatures(
    thumbnails: dict[int, Thumbnail | None],
    pairs: Pairs,
    degree: np.ndarray,
    settings: VerifySettings,
) -> np.ndarray:
    """A value per pair (rows of `thumbnails`) to rank each image's candidates by, highest first:
    6 + the similarity (-1 to 1) of two pages' filled-in content where both were laid out in one
    anchor page's frame (fills of one form); else 4 + a share of shared distinctive keypoints
    (votes) where both have keypoints (photos, pages of other text); else 2 + the similarity of
    two pictures' colour layouts (plain images); else the embedding score. `degree`: each row's
    number of candidates; busier pages are tried first as anchors."""
    values = pairs.score.astype(np.float64).copy()
    left, right = pairs.left.tolist(), pairs.right.tolist()
    page_key = _registered_pages(thumbnails, left, right, degree, settings)
    detailed = {
        row
        for row in set(left) | set(right)
        if thumbnails.get(row) is not None
        and len(thumbnails[row].keypoints.points) >= settings.min_keypoints  # type: ignore[union-attr]
    }
    vote_pairs = [
        (a, b)
        for a, b in zip(left, right, strict=True)
        if a in detailed and b in detailed and not (a in page_key and b in page_key)
    ]
    votes = keypoint_votes(thumbnails, sorted({row for pair in vote_pairs for row in pair}))
    layouts: dict[int, np.ndarray] = {}
    for slot, (a, b) in enumerate(zip(left, right, strict=True)):
        if a in page_key and b in page_key and page_key[a][0] == page_key[b][0]:
            values[slot] = 6.0 + float(page_key[a][1] @ page_key[b][1])
            continue
        if a in detailed and b in detailed:
            shared = votes.get((a, b), 0) + votes.get((b, a), 0)
            values[slot] = 4.0 + shared / (shared + settings.signature_vote_scale)
            continue
        first, second = thumbnails.get(a), thumbnails.get(b)
        if first is None or second is None or first.document or second.document:
            continue
        for row, image in ((a, first), (b, second)):
            if row not in layouts:
                layouts[row] = layout_signature(image)
        values[slot] = 2.0 + layout_similarity(layouts[a], layouts[b])
    return values


def _registered_pages(
    thumbnails: dict[int, Thumbnail | None],
    left: list[int],
    right: list[int],
    degree: np.ndarray,
    settings: VerifySettings,
) -> dict[int, tuple[int, np.ndarray]]:
    """row -> (anchor row, content signature) for pages that registered, with at least two
    others, to an anchor page of their cluster (fills of one template). A cluster's busiest
    page anchors first; the pages left over try the next busiest, up to ANCHORS times."""

    def is_page(row: int) -> bool:
        image = thumbnails.get(row)
        return image is not None and image.document and image.has_detail

    found: dict[int, tuple[int, np.ndarray]] = {}
    edges = [(a, b) for a, b in zip(left, right, strict=True) if is_page(a) and is_page(b)]
    for cluster in _clusters(edges):
        waiting = sorted(cluster, key=lambda row: (-degree[row], row))
        first_row = waiting[0]
        first = thumbnails[first_row]
        assert first is not None
        for _ in range(ANCHORS):
            if len(waiting) < 3:
                break
            pages = [thumbnails[row] for row in waiting]
            anchor = pages[0]
            assert anchor is not None
            # Later anchors lay their pages out in the first one's frame where the two register:
            # the pages a scan changed (thicker, blurred strokes) fall to a later anchor than
            # their originals do, and a fill must still be compared with its own rescan.
            frame, key = None, waiting[0]
            if anchor is not first:
                to_first = fit_similarity(first.keypoints, anchor.keypoints, settings)[0]
                if to_first is not None:
                    frame, key = (first, to_first), first_row
            signatures = page_signatures(pages, 0, settings, frame)  # type: ignore[arg-type]
            for row, signature in zip(waiting, signatures, strict=True):
                if signature is not None:
                    found[row] = (key, signature)
            waiting = [row for row in waiting[1:] if row not in found]
        _remove_common_content(found, first_row)
    return found


def _remove_common_content(found: dict[int, tuple[int, np.ndarray]], key: int) -> None:
    """Content signatures of one frame (`key`), less what most fills share: their mean and its
    main directions of variation (which boxes are usually filled, how a scan thickens strokes).
    Otherwise any two fills with text in the same boxes look alike and a fill's own rescan ranks
    below dozens of them. PCA over an even sample; none for small clusters, whose few
    candidates are all tried anyway."""
    rows = [row for row, (anchor, _) in found.items() if anchor == key]
    components = min(COMMON_COMPONENTS, len(rows) // PAGES_PER_COMPONENT)
    if components == 0:
        return
    step = max(1, len(rows) // COMPONENT_SAMPLE)
    sample = np.stack([found[row][1] for row in rows[::step]])
    mean = sample.mean(axis=0)
    directions = np.linalg.svd(sample - mean, full_matrices=False)[2][:components]
    for row in rows:
        centred = found[row][1] - mean
        centred -= (directions @ centred) @ directions
        found[row] = (key, centred / max(float(np.linalg.norm(centred)), 1e-6))


def keypoint_votes(
    thumbnails: dict[int, Thumbnail | None], rows: Sequence[int]
) -> dict[tuple[int, int], int]:
    """(u, v) -> how many of u's ORB descriptors have their nearest neighbour among all these
    images' descriptors in v, clearly nearer than any other image's (Lowe's ratio test over the
    whole set). Keypoints that many look-alikes share (a form's printed text, a video's static
    background) find several equally near and vote for none; those a copy shares with its
    original vote for it. Searched with FAISS: exactly for small sets, over an inverted file of
    random centroids for large ones."""
    faiss = import_faiss()
    chunks, owners = [], []
    for row in rows:
        image = thumbnails.get(row)
        descriptors = None if image is None else image.keypoints.descriptors
        if descriptors is not None and len(descriptors):
            chunks.append(descriptors[:VOTING_DESCRIPTORS])
            owners.append(np.full(len(chunks[-1]), row, dtype=np.int64))
    if len(chunks) < 2:
        return {}
    descriptors, owner = np.ascontiguousarray(np.concatenate(chunks)), np.concatenate(owners)
    if len(descriptors) <= EXACT_VOTING_LIMIT:
        index = faiss.IndexBinaryFlat(256)
    else:
        lists = int(2 ** np.ceil(np.log2(np.sqrt(len(descriptors)))))
        quantizer = faiss.IndexBinaryFlat(256)
        picks = np.random.default_rng(0).choice(len(descriptors), lists, replace=False)
        quantizer.add(descriptors[np.sort(picks)])
        index = faiss.IndexBinaryIVF(quantizer, 256, lists)
        index.is_trained = True  # random descriptors as centroids: training buys little here
        index.nprobe = 8
    index.add(descriptors)
    distances, neighbours = index.search(descriptors, VOTING_NEIGHBOURS)
    # The two nearest descriptors of other images, per descriptor (own ones skipped).
    found_owner = np.where(neighbours >= 0, owner[np.maximum(neighbours, 0)], -1)
    foreign = (found_owner != owner[:, None]) & (neighbours >= 0)
    order = np.argsort(~foreign, axis=1, kind="stable")  # foreign ones first, nearest first
    rows = np.arange(len(descriptors))[:, None]
    first, second = order[:, 0:1], order[:, 1:2]
    usable = foreign[rows, first][:, 0] & foreign[rows, second][:, 0]
    nearest, runner_up = distances[rows, first][:, 0], distances[rows, second][:, 0]
    image, other = found_owner[rows, first][:, 0], found_owner[rows, second][:, 0]
    voting = usable & (nearest <= VOTE_DISTANCE) & ((image == other) | (nearest < 0.8 * runner_up))
    pairs, counts = np.unique(
        np.stack([owner[voting], image[voting]], axis=1), axis=0, return_counts=True
    )
    return {(int(u), int(v)): int(n) for (u, v), n in zip(pairs, counts, strict=True)}


def _clusters(edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of an edge list (union-find), each a list of rows."""
    parent: dict[int, int] = {}

    def root(row: int) -> int:
        parent.setdefault(row, row)
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    for a, b in edges:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for row in parent:
        members.setdefault(root(row), []).append(row)
    return list(members.values())
