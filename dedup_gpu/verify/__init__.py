"""Stage 6: verification. Each candidate pair from the k-NN search is re-checked at a higher
resolution before grouping, so that copies (crops, rotations, re-saves, captions, rescans) pass
and look-alikes (another fill of one form, the next page, another shot of one scene) fail.

One idea a file:
- `thumbnails`: what is kept of each image (grey thumbnail, keypoints, colour layout, strokes);
- `transforms`: 3 x 3 plane maps and the bounds that keep a fitted one plausible;
- `alignment`: ways to lay one image over the other (keypoint fits, whole frame, crop search);
- `blocks`: the block-by-block comparison of two aligned images;
- `documents`: text records, their pen strokes and the stroke-by-stroke comparison;
- `reading`: records read by OCR, where their strokes cannot tell (photos, faxes);
- `verifier`: the Verifier, which checks candidate pairs and keeps a Verdict for each;
- `settings`: the sizes and thresholds; `mode`: whether a run verifies at all.

Hand-written because no library offers copy verification as such: OpenCV gives the keypoints,
RANSAC, ECC alignment and warping, torch the batched block statistics, RapidOCR the words.
"""

from ..records import Verdict, VerifyMethod, VerifyOutcome
from .alignment import Alignment, alignments, mirrored_alignment, template_alignment
from .blocks import block_agreement
from .documents import ink_map, looks_like_document, refine_alignment, text_differences
from .mode import opencv_available, resolve_mode
from .settings import DOCUMENT_SIZE, THUMBNAIL_SIZE, VerifySettings
from .thumbnails import Thumbnail, load_thumbnails, trim_padding
from .verifier import Verifier

__all__ = [
    "DOCUMENT_SIZE",
    "THUMBNAIL_SIZE",
    "Alignment",
    "Thumbnail",
    "Verdict",
    "Verifier",
    "VerifyMethod",
    "VerifyOutcome",
    "VerifySettings",
    "alignments",
    "block_agreement",
    "ink_map",
    "load_thumbnails",
    "looks_like_document",
    "mirrored_alignment",
    "opencv_available",
    "refine_alignment",
    "resolve_mode",
    "template_alignment",
    "text_differences",
    "trim_padding",
]
