"""The sizes verification looks at and the thresholds it decides by, in one frozen record."""

from __future__ import annotations

from dataclasses import dataclass

THUMBNAIL_SIZE = 320  # longest side of the images verification looks at
MIN_DETECTION_SIZE = 256  # smaller thumbnails are enlarged to this for keypoint detection
ORB_FEATURES = 500  # matching cost grows with the square of this; 500 finds crops to 30% area
CANVAS = 192  # both images are sampled onto a CANVAS x CANVAS grid for the block comparison
BLOCK = 16  # -> a 12 x 12 grid of blocks
# Documents are compared in more detail: one changed value on a form is a different record, and
# at 320 px a line of text is three pixels high. On a 150 dpi page body text is about 14 px high.
DOCUMENT_SIZE = 2048  # ... or the page's own size, when smaller (never enlarged)
TEXT_WINDOW = 24  # px of the document rendering: one or two characters of body text
TEXT_TOLERANCE = 1  # px a stroke may be from the other page's ink once aligned (resampling)
MIN_TEXT_STROKES = 8  # sure-stroke pixels (both sides) that make a window worth comparing
RULE_LENGTH = 50  # px; a straight run of ink this long is a rule or a box, not a character
SPECK = 4  # px; ink components smaller than this are dust or fax noise, not a stroke
TEMPLATE_SIZE = 96  # px, longest side of the larger picture when searching for a crop in it
TEMPLATE_MIN_SHARE = 0.2  # smallest share of the larger picture's area searched for a crop
TEMPLATE_PEAK = 0.6  # correlation at search size worth refining
# ... and at thumbnail size before the blocks are compared: a crop scores 0.90-0.99 (eval); two
# smooth pictures can place one inside the other at 0.75 and still agree block by block.
TEMPLATE_MATCH = 0.9
# A card-like record (ID card, label): this share of the thumbnail light ground, at least, and
# this share thin dark text on it. ID cards measure 0.73-0.76 and 0.02; photos rarely 0.01.
CARD_LIGHT_SHARE = 0.65
CARD_TEXT_SHARE = 0.01
CARD_TEXT_LINES = 6  # ... in this many lines at least: cards 11-24, captions and memes 1-4
CARD_TEXT_ROWS = 0.3  # ... or in this share of rows: faxed cards 0.37-0.75, captions 0.07-0.24
# A sheet photographed on a table: this share of it at least half as bright as its paper (a hand's
# shadow darkens a page less). Photos in a frame or a screenshot are mostly darker: of 2,376 photo
# copies (verify_eval seed 0) 42 are taken for pages, 20 before sheets were squared up.
SHEET_BRIGHT_SHARE = 0.85
# A picture in a digital frame: an upright rectangle (corners within this share of the
# picture's size) on a flat colour (this share of a ring FRAME_RING thumbnail pixels wide round
# it within FRAME_FLATNESS levels of its median in every channel). See documents._framed.
FRAME_SQUARENESS = 0.015
FRAME_RING = 6
FRAME_FLATNESS = 12
FRAME_FLAT_SHARE = 0.85
# A page is black and white only (a fax) when grey shades are under 1% of it and at most this
# share of its ink and shades together (the edges of smooth type are 16-30%).
BILEVEL_EDGES = 0.1
# A pair of pictures found different on this many informative blocks or more (a third of the
# grid) is detailed enough that its disagreement may be two edits apart (see Verifier.outvotable).
OUTVOTABLE_BLOCKS = 48
REFINE_SCALE = 0.25  # alignment is refined on strokes shrunk this much: as precise, 4x cheaper
STROKE = 9  # px; ink narrower than this is a stroke (text, rules, ticks), wider is a fill
# A lone mark on a pale ground (a ring, a monogram: minimal designs, logos) is not a page: its
# ink is at most this many pieces (SPECK px or more) and about as tall as wide (its extent's
# long side under LONE_MARK_ELONGATION times the short). At 320 px a short note on white
# blurred into words is 3-7 pieces spread along lines (5-10 times wider than tall); the
# marks of the benchmark's minimal designs are 1-3 pieces, 1-2 times (both seeds).
LONE_MARK_PIECES = 3
LONE_MARK_ELONGATION = 2.5


@dataclass(frozen=True)
class VerifySettings:
    """Decision thresholds; the values come from `dedup-gpu eval` runs (see docs/benchmarks.md)."""

    min_inliers: int = 8  # RANSAC-consistent keypoint matches for a geometric fit
    min_inlier_ratio: float = 0.25  # share of ratio-test matches that agree with the fit
    confident_inliers: int = 30  # a plain fit this strong: the mirror image is not tried
    min_perspective_inliers: int = 12  # matches an affine or perspective fit needs, at least
    max_stretch: float = 1.8  # local stretch of one axis against the other a copy may show
    max_foreshortening: float = 2.0  # how much nearer one edge of a photographed print may be
    ncc_agree: float = 0.5  # a block agrees when its correlation is at least this
    texture_std: float = 0.12  # block spread (in units of the image's own) that counts as detail
    one_sided_std: float = 0.35  # detail this strong on one side only is a disagreement
    # A block this much covered by text drawn over one picture (overlays.py), and under this
    # share of that on the other, is left out of a photo comparison: the copy added the text.
    overlay_text_cover: float = 0.05
    overlay_text_ratio: float = 0.25
    photo_agreement: float = 0.8  # share of informative blocks that must agree, photos
    perspective_retry_agreement: float = 0.9  # ... under a perspective tried after a rejection
    # Hue turn (degrees) between two pictures' coloured pixels an edit may make: the `colour`
    # family turns up to 30 (HSV; more in YCrCb); distractors are turned 80-180 degrees.
    max_hue_turn: float = 60.0
    document_screen: float = 0.6  # documents agreeing less than this on the block grid differ
    stroke_ink: float = 0.5  # ink (share of a page's strong strokes) that is surely a stroke
    trace_ink: float = 0.15  # ink that may be a stroke the scanner lightened or blurred
    # A text window differs when at least this many of one side's sure stroke pixels have no
    # trace of ink on the other side.
    text_unmatched_pixels: int = 6
    text_differences: int = 0  # documents with more differing text windows are other records
    # Characters smaller than this (px, median) in the compared rendering: another figure in a
    # field may leave no stroke outside the other's tolerance; the pair is left unverified.
    text_min_height: float = 9.0
    text_min_resolution: float = 0.8  # a copy coarser than this (side) leaves the pair unverified
    # Pages the strokes cannot decide (a photo, a fax, a coarse copy, or a few windows apart)
    # are read by OCR (reading.py), where installed: accepted when at least this many numbers
    # read alike in the same places, none differently, and every number read on one page only
    # is at most this many digits long (OCR drops a lone "1" now and then, never a date).
    read_text: bool = True
    reading_min_numbers: int = 3
    reading_unread_digits: int = 2
    reading_max_windows: int = 12  # ... a sharp pair is read when this few windows differ
    one_page_agreement: float = 0.9  # a page and a non-page: blocks that must agree too
    text_windows_per_difference: int = 100  # ... and at most one per this many text windows
    whole_frame_agreement: float = 0.95  # ... when no keypoint fit was found (blur, tiny copies)
    stretched_confirm_blocks: int = 48  # a whole-frame accept on fewer blocks: layout confirms
    min_blocks: int = 16  # fewer informative blocks than this: too little to judge (of 144)
    min_keypoints: int = 30  # an image with fewer has too little detail for a keypoint verdict
    signature_ink_margin: float = 10.0  # ink above the template's that is a page's own content
    signature_min_content: float = 50.0  # less own content than this: no signature (blank fill)
    signature_same_template: float = 0.85  # share of a page's ink on its anchor's: one template
    signature_vote_scale: float = 10.0  # votes at which a pair is ranked halfway up its band
    # Plain images, compared by colour layout (layout.py); YCrCb units, 0..255.
    layout_tolerance: float = 5.0  # leftover colour difference (RMS) a block may have
    layout_edge_share: float = 0.35  # ... plus this share of the block's own fine detail
    layout_detail: float = 3.0  # fine detail (RMS above a 1.5 px blur) that is a motif or text
    layout_overlay_ratio: float = (
        2.0  # ... an overlay when its detail is this far above the other's
    )
    layout_agreement: float = 0.85  # share of the overlap's blocks that must agree
    layout_contradictions: int = 2  # blocks that may disagree where no overlay explains it,
    layout_contradiction_share: float = 0.08  # ... or this share of the blocks, if more
    layout_hopeless: float = 0.3  # an alignment explaining less of the frame is not compared
    layout_min_evidence: int = 8  # agreeing blocks that stand out, at least, to accept
    # ... or, for a small mark on a flat ground (marks.py), its shape: the two marks' overlap
    # (intersection over union, at least), their size (grey thumbnail pixels, at least), and
    # the largest luma gain and hue turn of the colour edit (stronger edits relate other marks).
    mark_min_overlap: float = 0.8
    mark_min_pixels: int = 60
    mark_max_gain: float = 1.6
    mark_max_hue_turn: float = 20.0
    mark_telling_disagreement: float = 0.34  # share of its few telling blocks that may differ
    layout_telling_disagreement: float = 0.2  # share of those blocks that may differ, at most
    layout_min_spread: float = 4.0  # colour spread below which there is no layout to compare
    layout_fit_trim: float = 0.25  # share of worst-explained pixels left out of the second fit
    layout_max_gain: float = 3.0  # luma or saturation change an edit may make, either way
    layout_max_lean: float = 0.5  # how much luma may follow chroma (a hue turn moves luma)
    layout_grey_chroma: float = 4.0  # a side with 99% of pixels below 3x this chroma is grey
    layout_max_hue_turn: float = 40.0  # degrees of hue an edit may turn
    layout_max_cast: float = 15.0  # chroma shift an edit may add
    # Two greyscale plain pictures are one only when their grey levels match this closely.
    grey_max_gain_change: float = 0.1
    grey_max_offset: float = 10.0
