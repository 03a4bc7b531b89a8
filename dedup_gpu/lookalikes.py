"""Hard negatives for the labelled benchmark: images that look alike but are not copies.

Two fills of one form, consecutive pages of one report, consecutive frames of one video, the same
street by day and by night, two patches of the same brick wall: a dedup run that merges any of
these deletes a real, different image. Everything is drawn procedurally with Pillow and numpy
(Pillow's bundled font, no downloads), seeded, so the same seed writes the same bytes.

Each written image is its own item (its own `source`), except that every form and page also gets
one rescan (synth's `rescan` family) that shares its page's source: a dedup tool must join a rescan
to its page while never joining two different pages.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .synth import FAMILIES, LabelledImage, font, save_copy, stable_seed

LOOKALIKE_SETS: tuple[str, ...] = ("forms", "pages", "frames", "scenes", "textures")

PHOTO_JPEG_QUALITY = 92  # photo-like sets are saved as a camera would; documents as PNG
INK = (20, 20, 20)
TYPED_INK = (25, 35, 90)  # filled-in values: the blue-black of a form filled on a computer
PAPER = (255, 255, 255)
SOFT_GREY = (228, 228, 228)  # section bars and table headers: printed tint, still "paper"


@dataclass(frozen=True)
class _Scale:
    """How big and how many: "full" for benchmarks, "tiny" for CI."""

    page: tuple[int, int]  # A4 portrait
    photo: tuple[int, int]  # 3:2 landscape
    templates: int
    fills: int
    documents: int
    pages_per_document: int
    videos: int
    frames_per_video: int
    skylines: int
    texture_instances: int


_SCALES = {
    "full": _Scale((1240, 1754), (1280, 853), 3, 6, 2, 5, 2, 5, 3, 3),
    "tiny": _Scale((620, 877), (480, 320), 2, 3, 1, 3, 1, 3, 2, 2),
}

Colour = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


# --- Shared helpers ----------------------------------------------------------------------------


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(f"{seed}:lookalikes:" + ":".join(str(part) for part in parts))


def _np_rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(seed, "lookalikes", *parts))


def _smooth_noise(
    rng: np.random.Generator, size: tuple[int, int], cell: tuple[float, float]
) -> np.ndarray:
    """Value noise in about [-1, 1]: random values every `cell` (x, y) pixels, bicubic between.

    Cheap at any size (the random grid is small), and the cell size sets the feature scale."""
    width, height = size
    grid_w = max(2, math.ceil(width / cell[0]) + 2)
    grid_h = max(2, math.ceil(height / cell[1]) + 2)
    grid = rng.uniform(-1, 1, (grid_h, grid_w)).astype(np.float32)
    return np.asarray(
        Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )


def _grain(pixels: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor-like noise, so rendered flat colours look photographed rather than drawn."""
    noisy = pixels.astype(np.float32) + rng.standard_normal(pixels.shape, dtype=np.float32) * sigma
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _shade(colour: Colour, factor: float) -> Colour:
    red, green, blue = (max(0, min(255, round(channel * factor))) for channel in colour)
    return red, green, blue


def _mix(first: Colour, second: Colour, share: float) -> Colour:
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(first, second, strict=True))
    return red, green, blue


def _vertical_gradient(size: tuple[int, int], top: Colour, bottom: Colour) -> np.ndarray:
    width, height = size
    share = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    column = np.array(top, np.float32) * (1 - share) + np.array(bottom, np.float32) * share
    return np.broadcast_to(column, (height, width, 3)).copy()


# --- Pseudo-text -------------------------------------------------------------------------------

_ONSETS = ("b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "st", "tr", "pr")
_VOWELS = ("a", "e", "i", "o", "u", "ea", "io", "ou")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "nt", "rs", "st")

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kaito", "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Rosa", "Sven", "Tariq", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Almeida", "Brandt", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Schmidt",
    "Tanaka", "Weber",
)  # fmt: skip
CITIES = (
    "Lyon", "Porto", "Leeds", "Graz", "Turku", "Gdansk", "Bilbao", "Utrecht", "Aarhus", "Brno",
)  # fmt: skip
DEPARTMENTS = ("Finance", "Logistics", "Research", "Sales", "Legal", "Facilities", "IT")


class _Vocabulary:
    """Pronounceable pseudo-words with Zipf-like frequencies, so running text has the texture of
    real prose (short frequent words, longer rare ones) without meaning anything."""

    def __init__(self, rng: random.Random, size: int = 400):
        words: set[str] = set()
        while len(words) < size:
            syllables = rng.choices((1, 2, 3, 4), weights=(4, 5, 3, 1))[0]
            words.add(
                "".join(
                    rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                    for _ in range(syllables)
                )
            )
        # Short words first, so the most frequent ranks get them, as in real languages.
        self.words = sorted(words, key=lambda word: (len(word), word))
        # Offset Zipf: the commonest word is a few percent of the text, as "the" is in English.
        self.weights = [1 / (rank + 4) for rank in range(len(self.words))]

    def words_from(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, weights=self.weights, k=count)

    def sentence(self, rng: random.Random) -> str:
        words = self.words_from(rng, rng.randint(6, 18))
        for index in range(2, len(words) - 2):
            if rng.random() < 0.07:
                words[index] += ","
        return " ".join(words).capitalize() + "."

    def title(self, rng: random.Random, count: int) -> str:
        """Capitalised words for names and headings, drawn evenly (names are rarely "the")."""
        return " ".join(word.capitalize() for word in rng.sample(self.words, count))


# --- Forms -------------------------------------------------------------------------------------

_FORM_TITLES = (
    "EXPENSE CLAIM FORM",
    "VEHICLE REGISTRATION APPLICATION",
    "PATIENT INTAKE FORM",
    "PURCHASE ORDER",
    "CHANGE OF ADDRESS NOTIFICATION",
)
_FIELD_KINDS = (
    ("Full name", "name"),
    ("Date of birth", "date"),
    ("Reference no.", "id"),
    ("Account number", "id"),
    ("Amount claimed", "amount"),
    ("City", "city"),
    ("Street address", "street"),
    ("Email", "email"),
    ("Phone", "phone"),
    ("Date", "date"),
    ("Employee ID", "id"),
    ("Department", "department"),
    ("Postcode", "postcode"),
    ("Approved by", "name"),
)
_CHECK_GROUPS = (
    ("Payment method", ("Cash", "Card", "Transfer", "Cheque")),
    ("Category", ("Travel", "Meals", "Equipment", "Other")),
    ("Priority", ("Low", "Normal", "Urgent")),
    ("Contact by", ("Post", "Email", "Phone")),
)
_TABLE_COLUMNS = (
    ("Item", "code", 0.14),
    ("Description", "description", 0.40),
    ("Qty", "quantity", 0.10),
    ("Unit price", "amount", 0.17),
    ("Total", "amount", 0.19),
)


@dataclass(frozen=True)
class _Slot:
    """Where one filled-in value goes, and what kind of value it is."""

    kind: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class _FormTemplate:
    blank: Image.Image
    slots: tuple[_Slot, ...]
    checkbox_groups: tuple[tuple[tuple[int, int, int, int], ...], ...]
    table_rows: tuple[tuple[_Slot, ...], ...]


def _form_value(kind: str, rng: random.Random, vocabulary: _Vocabulary) -> str:
    if kind == "name":
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if kind == "date":
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1950, 2024)}"
    if kind == "amount":
        return f"{rng.uniform(5, 4000):,.2f}"
    if kind == "id":
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
        return f"{letters}-{rng.randint(100000, 999999)}"
    if kind == "city":
        return rng.choice(CITIES)
    if kind == "street":
        return f"{rng.randint(1, 240)} {vocabulary.title(rng, 1)} Street"
    if kind == "email":
        return f"{rng.choice(FIRST_NAMES).lower()}.{rng.choice(LAST_NAMES).lower()}@example.org"
    if kind == "phone":
        return f"+44 20 7946 {rng.randint(0, 999):03d}{rng.randint(0, 9)}"
    if kind == "department":
        return rng.choice(DEPARTMENTS)
    if kind == "postcode":
        return f"{rng.randint(10, 99)}{rng.randint(100, 999)}"
    if kind == "code":
        return f"{rng.choice('ABCDEFKMPRT')}{rng.randint(100, 999)}"
    if kind == "description":
        return vocabulary.title(rng, rng.randint(1, 3))
    if kind == "quantity":
        return str(rng.randint(1, 24))
    raise ValueError(kind)


def _draw_logo(
    draw: ImageDraw.ImageDraw, rng: random.Random, box: tuple[int, int, int, int]
) -> None:
    """A small coloured mark: kept small so the page stays a mostly white, low-colour document."""
    left, top, right, bottom = box
    colour = rng.choice(((30, 80, 160), (170, 40, 40), (20, 120, 90), (200, 120, 20)))
    shape = rng.choice(("circle", "diamond", "bars"))
    if shape == "circle":
        draw.ellipse(box, fill=colour)
        inset = (right - left) // 4
        draw.ellipse((left + inset, top + inset, right - inset, bottom - inset), fill=PAPER)
    elif shape == "diamond":
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        draw.polygon(
            [(middle_x, top), (right, middle_y), (middle_x, bottom), (left, middle_y)], fill=colour
        )
    else:
        bar = (bottom - top) // 5
        for index in range(3):
            y = top + index * 2 * bar
            draw.rectangle((left + index * bar, y, right, y + bar), fill=colour)


def _form_template(
    seed: int, index: int, size: tuple[int, int], vocabulary: _Vocabulary
) -> _FormTemplate:
    """The printed form, blank: everything that every fill of it shares."""
    rng = _rng(seed, "form-template", index)
    width, height = size
    unit = width / 1240  # layouts are designed at 150 dpi and scaled
    margin = round(80 * unit)
    page = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(page)

    logo = round(90 * unit)
    _draw_logo(draw, rng, (margin, margin, margin + logo, margin + logo))
    company = vocabulary.title(rng, 2) + rng.choice((" Ltd", " GmbH", " S.A.", " Council"))
    draw.text((margin + logo + 20 * unit, margin), company, font=font(34 * unit), fill=INK)
    address = f"{rng.randint(1, 99)} {vocabulary.title(rng, 1)} Road, {rng.choice(CITIES)}"
    draw.text(
        (margin + logo + 20 * unit, margin + 48 * unit), address, font=font(20 * unit), fill=INK
    )
    form_number = f"Form {rng.choice('ABCDKPT')}-{rng.randint(10, 99)} rev {rng.randint(1, 9)}"
    draw.text((width - margin, margin), form_number, font=font(20 * unit), fill=INK, anchor="ra")
    y = margin + logo + 40 * unit
    draw.text(
        (width / 2, y),
        _FORM_TITLES[index % len(_FORM_TITLES)],
        font=font(40 * unit),
        fill=INK,
        anchor="ma",
    )
    y += 80 * unit
    draw.line((margin, y, width - margin, y), fill=INK, width=max(1, round(3 * unit)))
    y += 30 * unit

    slots: list[_Slot] = []
    fields = rng.sample(_FIELD_KINDS, k=rng.randint(8, 11))
    box_h = round(46 * unit)
    label_font = font(19 * unit)
    inner = width - 2 * margin
    section = 0
    while fields:
        section += 1
        draw.rectangle((margin, y, width - margin, y + 40 * unit), fill=SOFT_GREY)
        heading = f"{section}. {vocabulary.title(rng, rng.randint(1, 2))} details"
        draw.text(
            (margin + 12 * unit, y + 20 * unit),
            heading,
            font=font(22 * unit),
            fill=INK,
            anchor="lm",
        )
        y += 60 * unit
        for _ in range(rng.randint(2, 3)):
            row = [fields.pop() for _ in range(min(len(fields), rng.randint(1, 3)))]
            if not row:
                break
            gap = 24 * unit
            field_w = (inner - gap * (len(row) - 1)) / len(row)
            for column, (label, kind) in enumerate(row):
                left = round(margin + column * (field_w + gap))
                draw.text((left, y), label, font=label_font, fill=INK)
                box = (
                    left,
                    round(y + 26 * unit),
                    round(left + field_w),
                    round(y + 26 * unit) + box_h,
                )
                draw.rectangle(box, outline=INK, width=max(1, round(2 * unit)))
                slots.append(_Slot(kind, box))
            y += 26 * unit + box_h + 22 * unit

    checkbox_groups = []
    square = round(26 * unit)
    for label, options in rng.sample(_CHECK_GROUPS, k=2):
        draw.text((margin, y + square / 2), f"{label}:", font=label_font, fill=INK, anchor="lm")
        x = margin + 220 * unit
        group = []
        for option in options:
            box = (round(x), round(y), round(x) + square, round(y) + square)
            draw.rectangle(box, outline=INK, width=max(1, round(2 * unit)))
            draw.text(
                (x + square + 10 * unit, y + square / 2),
                option,
                font=label_font,
                fill=INK,
                anchor="lm",
            )
            group.append(box)
            x += 200 * unit
        checkbox_groups.append(tuple(group))
        y += square + 24 * unit

    y += 16 * unit
    row_h = round(40 * unit)
    footer_room = 190 * unit
    rows = max(2, min(rng.randint(6, 10), int((height - footer_room - y) / row_h) - 1))
    columns = []
    x = float(margin)
    for title, kind, share in _TABLE_COLUMNS:
        columns.append((title, kind, round(x), round(x + share * inner)))
        x += share * inner
    top = round(y)
    draw.rectangle((margin, top, width - margin, top + row_h), fill=SOFT_GREY)
    table_rows = []
    for row in range(rows + 1):
        row_top = top + row * row_h
        draw.line((margin, row_top, width - margin, row_top), fill=INK, width=max(1, round(unit)))
        if row == 0:
            for title, _, left, _ in columns:
                draw.text(
                    (left + 8 * unit, row_top + row_h / 2),
                    title,
                    font=label_font,
                    fill=INK,
                    anchor="lm",
                )
        else:
            table_rows.append(
                tuple(
                    _Slot(kind, (left, row_top, right, row_top + row_h))
                    for _, kind, left, right in columns
                )
            )
    bottom = top + (rows + 1) * row_h
    draw.line((margin, bottom, width - margin, bottom), fill=INK, width=max(1, round(unit)))
    for _, _, left, _ in columns:
        draw.line((left, top, left, bottom), fill=INK, width=max(1, round(unit)))
    draw.line((width - margin, top, width - margin, bottom), fill=INK, width=max(1, round(unit)))

    signature_y = height - margin - 70 * unit
    draw.line((margin, signature_y, margin + 420 * unit, signature_y), fill=INK, width=1)
    draw.text((margin, signature_y + 8 * unit), "Signature", font=label_font, fill=INK)
    draw.line(
        (width - margin - 300 * unit, signature_y, width - margin, signature_y), fill=INK, width=1
    )
    draw.text(
        (width - margin - 300 * unit, signature_y + 8 * unit), "Date", font=label_font, fill=INK
    )
    notice = f"Please return this form to {company}. Keep a copy for your records."
    draw.text(
        (width / 2, height - margin + 10 * unit),
        notice,
        font=font(16 * unit),
        fill=INK,
        anchor="ma",
    )
    return _FormTemplate(page, tuple(slots), tuple(checkbox_groups), tuple(table_rows))


def _filled_form(
    template: _FormTemplate, rng: random.Random, vocabulary: _Vocabulary, unit: float
) -> Image.Image:
    """The blank form with values typed into its boxes, ticks and table: nothing else changes."""
    page = template.blank.copy()
    draw = ImageDraw.Draw(page)
    value_font = font(24 * unit)
    for slot in template.slots:
        left, top, right, bottom = slot.box
        text = _form_value(slot.kind, rng, vocabulary)
        draw.text(
            (left + 10 * unit, (top + bottom) / 2),
            text,
            font=value_font,
            fill=TYPED_INK,
            anchor="lm",
        )
    for group in template.checkbox_groups:
        for index in rng.sample(range(len(group)), k=rng.choice((1, 1, 2))):
            left, top, right, bottom = group[index]
            inset = max(1, (right - left) // 5)
            stroke = max(1, round(3 * unit))
            draw.line((left + inset, top + inset, right - inset, bottom - inset), TYPED_INK, stroke)
            draw.line((left + inset, bottom - inset, right - inset, top + inset), TYPED_INK, stroke)
    cell_font = font(20 * unit)
    for row in template.table_rows[: rng.randint(2, len(template.table_rows))]:
        for slot in row:
            left, top, right, bottom = slot.box
            text = _form_value(slot.kind, rng, vocabulary)
            if slot.kind in ("amount", "quantity"):  # figures align right, as in any ledger
                draw.text(
                    (right - 8 * unit, (top + bottom) / 2),
                    text,
                    font=cell_font,
                    fill=TYPED_INK,
                    anchor="rm",
                )
            else:
                draw.text(
                    (left + 8 * unit, (top + bottom) / 2),
                    text,
                    font=cell_font,
                    fill=TYPED_INK,
                    anchor="lm",
                )
    return page


def _forms(seed: int, scale: _Scale) -> Iterator[tuple[str, Image.Image]]:
    unit = scale.page[0] / 1240
    for template_index in range(scale.templates):
        vocabulary = _Vocabulary(_rng(seed, "form-vocabulary", template_index), 200)
        template = _form_template(seed, template_index, scale.page, vocabulary)
        for fill in range(scale.fills):
            rng = _rng(seed, "form-fill", template_index, fill)
            yield f"t{template_index}_{fill}", _filled_form(template, rng, vocabulary, unit)


# --- Pages -------------------------------------------------------------------------------------


def _wrapped_lines(
    words: list[str], measure: Callable[[str], float], line_width: float, first_indent: float
) -> list[list[str]]:
    """Greedy line breaking; the first line is shorter by the paragraph indent."""
    lines: list[list[str]] = [[]]
    used = first_indent
    space = measure(" ")
    for word in words:
        length = measure(word)
        if lines[-1] and used + space + length > line_width:
            lines.append([])
            used = 0.0
        used += (space if lines[-1] else 0) + length
        lines[-1].append(word)
    return lines


def _pages(seed: int, scale: _Scale) -> Iterator[tuple[str, Image.Image]]:
    width, height = scale.page
    unit = width / 1240
    margin_x, margin_top, margin_bottom = round(150 * unit), round(150 * unit), round(150 * unit)
    body_font, header_font, heading_font = font(22 * unit), font(18 * unit), font(30 * unit)
    line_h = 34 * unit
    for document in range(scale.documents):
        rng = _rng(seed, "pages", document)
        vocabulary = _Vocabulary(_rng(seed, "pages-vocabulary", document))
        title = vocabulary.title(rng, 3)
        organisation = vocabulary.title(rng, 2) + " Institute"
        reference = f"Ref. {rng.choice('ABCDKR')}{rng.randint(1000, 9999)} - internal"
        first_page = rng.randint(3, 40)
        total = first_page + scale.pages_per_document + rng.randint(5, 30)
        section = rng.randint(1, 6)
        for index in range(scale.pages_per_document):
            page = Image.new("RGB", scale.page, PAPER)
            draw = ImageDraw.Draw(page)
            draw.text((margin_x, margin_top - 50 * unit), title, font=header_font, fill=INK)
            draw.text(
                (width - margin_x, margin_top - 50 * unit),
                organisation,
                font=header_font,
                fill=INK,
                anchor="ra",
            )
            rule_y = margin_top - 20 * unit
            draw.line((margin_x, rule_y, width - margin_x, rule_y), fill=INK, width=1)
            footer_y = height - margin_bottom + 40 * unit
            draw.line((margin_x, footer_y, width - margin_x, footer_y), fill=INK, width=1)
            draw.text((margin_x, footer_y + 14 * unit), reference, font=header_font, fill=INK)
            draw.text(
                (width - margin_x, footer_y + 14 * unit),
                f"Page {first_page + index} of {total}",
                font=header_font,
                fill=INK,
                anchor="ra",
            )
            y = margin_top + 20 * unit
            bottom = height - margin_bottom - line_h
            text_width = width - 2 * margin_x
            while y < bottom:
                if rng.random() < 0.12 and y < bottom - 4 * line_h:
                    section += 1
                    heading = f"{section}. {vocabulary.title(rng, rng.randint(2, 4))}"
                    draw.text((margin_x, y + 10 * unit), heading, font=heading_font, fill=INK)
                    y += 2 * line_h
                words = " ".join(vocabulary.sentence(rng) for _ in range(rng.randint(2, 6)))
                indent = 40 * unit
                lines = _wrapped_lines(words.split(), body_font.getlength, text_width, indent)
                for number, line in enumerate(lines):
                    if y >= bottom:
                        break
                    line_indent = indent if number == 0 else 0
                    _justified(
                        draw,
                        line,
                        margin_x + line_indent,
                        y,
                        text_width - line_indent,
                        justify=number < len(lines) - 1,
                        text_font=body_font,
                    )
                    y += line_h
                y += line_h * 0.5
            yield f"d{document}_p{index}", page


def _justified(
    draw: ImageDraw.ImageDraw,
    words: list[str],
    left: float,
    top: float,
    line_width: float,
    *,
    justify: bool,
    text_font: Font,
) -> None:
    """Draw a line of words spread to the full width, as typeset body text is."""
    lengths = [text_font.getlength(word) for word in words]
    space = text_font.getlength(" ")
    if justify and len(words) > 1:
        space = (line_width - sum(lengths)) / (len(words) - 1)
    x = left
    for word, length in zip(words, lengths, strict=True):
        draw.text((x, top), word, font=text_font, fill=INK)
        x += length + space


# --- Frames of a video -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    image: Image.Image  # RGBA, wider than the frame by the distance it pans
    speed: float  # share of the frame width it moves per frame


def _textured_layer(
    layer: Image.Image, rng: np.random.Generator, strength: float, cell: float
) -> Image.Image:
    """Modulate a flat-coloured RGBA layer by smooth noise, so surfaces are not flat paint."""
    pixels = np.asarray(layer, dtype=np.float32).copy()
    field = _smooth_noise(rng, layer.size, (cell, cell)) + 0.5 * _smooth_noise(
        rng, layer.size, (cell / 6, cell / 6)
    )
    pixels[..., :3] *= (1 + strength * field)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA")


def _video_layers(
    seed: int, video: int, size: tuple[int, int], frames: int
) -> tuple[np.ndarray, list[_Layer]]:
    """The sky, and the far, middle and near layers of one video's scene, each drawn once as wide
    as the camera pans over it: a frame is the sky with a window cut from each layer."""
    rng = _rng(seed, "frames", video)
    noise_rng = _np_rng(seed, "frames", video)
    width, height = size
    unit = width / 1280
    palettes = (
        {
            "sky": ((70, 130, 210), (190, 215, 235)),
            "hills": (95, 125, 140),
            "ground": (110, 150, 70),
            "road": (85, 85, 90),
        },
        {
            "sky": ((40, 60, 120), (240, 170, 110)),
            "hills": (90, 80, 110),
            "ground": (120, 120, 60),
            "road": (70, 65, 70),
        },
        {
            "sky": ((150, 160, 170), (210, 212, 215)),
            "hills": (110, 120, 125),
            "ground": (90, 120, 80),
            "road": (95, 95, 95),
        },
    )
    # Consecutive videos get different light (clear, sunset, overcast), so the two scenes differ.
    first = _rng(seed, "frames", "palette").randrange(len(palettes))
    palette = palettes[(first + video) % len(palettes)]
    sky = _vertical_gradient(size, *palette["sky"])
    sun_x, sun_y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.3) * height
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    glow = np.exp(-((xx - sun_x) ** 2 + (yy - sun_y) ** 2) / (2 * (0.04 * width) ** 2))
    sky += glow[..., None] * np.array((60, 50, 20), np.float32)
    clouds = np.clip(_smooth_noise(noise_rng, size, (width / 5, height / 8)), 0, 1)
    sky = sky * (1 - 0.5 * clouds[..., None]) + 250 * 0.5 * clouds[..., None]

    horizon = rng.uniform(0.5, 0.6) * height
    layers = []
    speeds = (0.006, 0.02, 0.045)
    for depth, speed in enumerate(speeds):
        layer_w = width + math.ceil(speed * width * (frames - 1)) + 2
        layer = Image.new("RGBA", (layer_w, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        if depth == 0:  # far hills, hazy
            phases = [rng.uniform(0, 2 * math.pi) for _ in range(3)]
            profile = [
                (
                    x,
                    horizon
                    - 0.12
                    * height
                    * (
                        0.6
                        + 0.25 * math.sin(x / width * 5 + phases[0])
                        + 0.1 * math.sin(x / width * 13 + phases[1])
                        + 0.05 * math.sin(x / width * 31 + phases[2])
                    ),
                )
                for x in range(0, layer_w + 8, 8)
            ]
            draw.polygon([(0, height), *profile, (layer_w, height)], fill=palette["hills"])
            layer = _textured_layer(layer, noise_rng, 0.08, 200 * unit)
        elif depth == 1:  # fields, houses and trees
            ground_top = horizon + 0.05 * height
            draw.rectangle((0, ground_top, layer_w, height), fill=palette["ground"])
            x = rng.uniform(-40, 0) * unit
            while x < layer_w:
                base = ground_top + rng.uniform(0.0, 0.04) * height
                if rng.random() < 0.45:
                    house_w, house_h = rng.uniform(90, 180) * unit, rng.uniform(60, 120) * unit
                    wall = rng.choice(((210, 200, 180), (180, 90, 70), (230, 230, 220)))
                    draw.rectangle((x, base - house_h, x + house_w, base), fill=wall)
                    draw.polygon(
                        [
                            (x - 8 * unit, base - house_h),
                            (x + house_w / 2, base - house_h - house_w * 0.4),
                            (x + house_w + 8 * unit, base - house_h),
                        ],
                        fill=rng.choice(((120, 50, 40), (70, 70, 80))),
                    )
                    for window in range(int(house_w // (40 * unit))):
                        wx = x + 12 * unit + window * 40 * unit
                        draw.rectangle(
                            (wx, base - house_h * 0.7, wx + 20 * unit, base - house_h * 0.4),
                            fill=(60, 70, 90),
                        )
                    x += house_w + rng.uniform(20, 80) * unit
                else:
                    trunk_h, crown = rng.uniform(40, 80) * unit, rng.uniform(40, 80) * unit
                    draw.rectangle(
                        (x - 5 * unit, base - trunk_h, x + 5 * unit, base), fill=(80, 60, 40)
                    )
                    green = _shade((50, 100, 45), rng.uniform(0.7, 1.2))
                    for _ in range(4):
                        cx = x + rng.uniform(-0.5, 0.5) * crown
                        cy = base - trunk_h - rng.uniform(0, 0.6) * crown
                        r = crown * rng.uniform(0.5, 0.8)
                        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=green)
                    x += crown + rng.uniform(10, 90) * unit
            layer = _textured_layer(layer, noise_rng, 0.12, 60 * unit)
        else:  # the road and what stands beside it
            road_top = 0.82 * height
            draw.rectangle((0, road_top - 0.03 * height, layer_w, road_top), fill=(95, 120, 60))
            draw.rectangle((0, road_top, layer_w, height), fill=palette["road"])
            dash = 60 * unit
            for start in np.arange(0, layer_w, 2.5 * dash):
                lane = road_top + 0.09 * height
                draw.rectangle((start, lane, start + dash, lane + 6 * unit), fill=(230, 230, 220))
            x = rng.uniform(0, 100) * unit
            while x < layer_w:
                if rng.random() < 0.5:  # a lamp post
                    draw.rectangle(
                        (x, road_top - 0.5 * height, x + 8 * unit, road_top), fill=(50, 50, 55)
                    )
                    draw.rectangle(
                        (
                            x,
                            road_top - 0.5 * height,
                            x + 50 * unit,
                            road_top - 0.5 * height + 8 * unit,
                        ),
                        fill=(50, 50, 55),
                    )
                else:  # a bush
                    r = rng.uniform(25, 50) * unit
                    draw.ellipse(
                        (x - r, road_top - 1.6 * r, x + r, road_top + 0.2 * r),
                        fill=_shade((40, 90, 40), rng.uniform(0.7, 1.2)),
                    )
                x += rng.uniform(150, 350) * unit
            layer = _textured_layer(layer, noise_rng, 0.15, 30 * unit)
        layers.append(_Layer(layer, speed))
    return sky, layers


def _frames(seed: int, scale: _Scale) -> Iterator[tuple[str, Image.Image]]:
    width, height = scale.photo
    unit = width / 1280
    count = scale.frames_per_video
    for video in range(scale.videos):
        sky, layers = _video_layers(seed, video, scale.photo, count)
        rng = _rng(seed, "frames-motion", video)
        car_x, car_speed = rng.uniform(0.1, 0.4) * width, rng.uniform(0.08, 0.11) * width
        car_colour = rng.choice(((180, 30, 30), (30, 60, 150), (230, 230, 230), (30, 30, 30)))
        bird_x, bird_y = rng.uniform(0.2, 0.6) * width, rng.uniform(0.15, 0.3) * height
        for frame in range(count):
            picture = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
            for layer in layers:
                offset = round(layer.speed * width * frame)
                part = layer.image.crop((offset, 0, offset + width, height))
                picture.paste(part, (0, 0), part)
            draw = ImageDraw.Draw(picture)
            # Independent motion: a car overtaking the camera and a bird crossing the sky.
            x = car_x + car_speed * frame - 0.045 * width * frame
            base = 0.95 * height
            body_w, body_h = 220 * unit, 50 * unit
            draw.rectangle((x, base - body_h, x + body_w, base), fill=car_colour)
            draw.polygon(
                [
                    (x + 50 * unit, base - body_h),
                    (x + 80 * unit, base - 1.9 * body_h),
                    (x + 160 * unit, base - 1.9 * body_h),
                    (x + 190 * unit, base - body_h),
                ],
                fill=_shade(car_colour, 0.8),
            )
            for wheel in (x + 45 * unit, x + 175 * unit):
                r = 22 * unit
                draw.ellipse((wheel - r, base - r, wheel + r, base + r), fill=(20, 20, 20))
            bx, by = bird_x - 0.03 * width * frame, bird_y + 0.01 * height * math.sin(frame)
            span = 18 * unit
            draw.line(
                [(bx - span, by - span / 2), (bx, by), (bx + span, by - span / 2)],
                fill=(30, 30, 30),
                width=max(1, round(3 * unit)),
            )
            picture = picture.filter(ImageFilter.GaussianBlur(0.6 * unit))
            grain = _np_rng(seed, "frames-grain", video, frame)
            yield f"v{video}_f{frame}", Image.fromarray(_grain(np.asarray(picture), grain, 3.0))


# --- The same skyline by day and by night ------------------------------------------------------


_GROUND = 0.8  # street level, as a share of the height


@dataclass(frozen=True)
class _Building:
    left: float  # in shares of the frame width and height
    right: float
    top: float
    colour: Colour
    spire: bool
    windows: tuple[tuple[float, float, float, float], ...]


def _skyline(rng: random.Random) -> list[_Building]:
    buildings = []
    x = rng.uniform(-0.06, -0.01)
    while x < 1.05:
        tower = rng.random() < 0.15
        width = rng.uniform(0.03, 0.05) if tower else rng.uniform(0.05, 0.12)
        top = _GROUND - (rng.uniform(0.5, 0.65) if tower else rng.uniform(0.15, 0.45))
        colour = rng.choice(((190, 180, 165), (150, 150, 155), (160, 90, 70), (110, 140, 160)))
        columns = max(1, int(width / 0.014))
        rows = max(1, int((_GROUND - top - 0.02) / 0.03))
        pitch_x = width / columns
        windows = tuple(
            (
                x + (column + 0.25) * pitch_x,
                top + 0.02 + row * 0.03,
                x + (column + 0.75) * pitch_x,
                top + 0.02 + row * 0.03 + 0.015,
            )
            for row in range(rows)
            for column in range(columns)
        )
        buildings.append(
            _Building(x, x + width, top, _shade(colour, rng.uniform(0.85, 1.1)), tower, windows)
        )
        x += width + rng.uniform(0.0, 0.015)
    return buildings


def _skyline_shot(
    buildings: list[_Building],
    size: tuple[int, int],
    *,
    night: bool,
    zoom: float,
    shift: tuple[float, float],
    rng: random.Random,
    noise_rng: np.random.Generator,
) -> Image.Image:
    width, height = size

    def at(x: float, y: float) -> tuple[float, float]:
        """Where a point of the scene lands in this shot: zoomed about the centre, then shifted."""
        return (
            ((x - 0.5) * zoom + 0.5 + shift[0]) * width,
            ((y - 0.5) * zoom + 0.5 + shift[1]) * height,
        )

    def box(left: float, top: float, right: float, bottom: float) -> tuple[float, ...]:
        return (*at(left, top), *at(right, bottom))

    if night:
        sky = _vertical_gradient(size, (12, 18, 50), (75, 60, 90))
    else:
        sky = _vertical_gradient(size, (60, 120, 205), (175, 205, 235))
    picture = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    if night:
        for _ in range(60):
            x, y = rng.uniform(0, 1), rng.uniform(0, 0.3)
            draw.point(at(x, y), fill=(230, 230, 210))
    ground = (35, 35, 40) if night else (120, 118, 112)
    draw.rectangle(box(-1, _GROUND, 2, 2), fill=ground)
    shadow = (85, 85, 85)
    for building in buildings:
        if not night:  # the sun is to the upper left: shadows fall to the right on the street
            draw.polygon(
                [
                    at(building.right, _GROUND),
                    at(building.right + 0.04, _GROUND + 0.05),
                    at(building.left + 0.04, _GROUND + 0.05),
                    at(building.left, _GROUND),
                ],
                fill=shadow,
            )
    for building in buildings:
        # At night the facades still catch some city light; a long exposure shows them dimly.
        face = _shade(building.colour, 0.3 if night else 1.0)
        side = _shade(building.colour, 0.18 if night else 0.62)
        split = building.right - 0.22 * (building.right - building.left)
        draw.rectangle(box(building.left, building.top, split, _GROUND), fill=face)
        draw.rectangle(box(split, building.top, building.right, _GROUND), fill=side)
        if building.spire:
            middle = (building.left + building.right) / 2
            draw.line(
                [at(middle, building.top), at(middle, building.top - 0.08)],
                fill=side if night else (90, 90, 95),
                width=max(1, round(width / 400)),
            )
            if night:
                tip = at(middle, building.top - 0.08)
                draw.ellipse((tip[0] - 3, tip[1] - 3, tip[0] + 3, tip[1] + 3), fill=(255, 40, 40))
        for window in building.windows:
            if night:
                lit = rng.random() < 0.4
                colour = _shade((255, 205, 120), rng.uniform(0.6, 1.0)) if lit else (22, 22, 30)
            else:
                colour = _mix(_shade(building.colour, 0.55), (120, 160, 200), rng.uniform(0.2, 0.6))
            draw.rectangle(box(*window), fill=colour)
    lamps = [0.05 + index * 0.15 for index in range(7)]
    for lamp in lamps:
        draw.line(
            [at(lamp, _GROUND + 0.12), at(lamp, _GROUND - 0.02)],
            fill=(40, 40, 45),
            width=max(1, round(width / 300)),
        )
    pixels = np.asarray(picture, dtype=np.float32)
    if night:  # street lights glow over everything around them
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        for lamp in lamps:
            cx, cy = at(lamp, _GROUND - 0.025)
            spread = (0.025 * width * zoom) ** 2
            glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * spread))
            pixels += glow[..., None] * np.array((255, 190, 110), np.float32)
    # Walls and street get a mottled surface; the sky stays smooth, as a real sky is.
    built = np.any(np.asarray(picture) != sky.astype(np.uint8), axis=2)
    texture = 1 + 0.06 * built * _smooth_noise(noise_rng, size, (width / 60, width / 60))
    pixels *= texture[..., None]
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    picture = picture.filter(ImageFilter.GaussianBlur(max(0.4, width / 2000)))
    return Image.fromarray(_grain(np.asarray(picture), noise_rng, 6.0 if night else 2.5))


def _scenes(seed: int, scale: _Scale) -> Iterator[tuple[str, Image.Image]]:
    for scene in range(scale.skylines):
        rng = _rng(seed, "scenes", scene)
        buildings = _skyline(rng)
        zoom = rng.uniform(1.02, 1.06)
        shift = (rng.choice((-1, 1)) * rng.uniform(0.01, 0.03), rng.uniform(-0.015, 0.015))
        for name, night, view in (
            ("day", False, (1.0, (0.0, 0.0))),
            ("night", True, (zoom, shift)),
        ):
            yield (
                f"s{scene}_{name}",
                _skyline_shot(
                    buildings,
                    scale.photo,
                    night=night,
                    zoom=view[0],
                    shift=view[1],
                    rng=_rng(seed, "scenes", scene, name),
                    noise_rng=_np_rng(seed, "scenes", scene, name),
                ),
            )


# --- Textures ----------------------------------------------------------------------------------


def _brick_wall(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Running bond at a fixed brick size; each instance has its own phase, brick tones, dirt."""
    width, height = size
    brick_h = height / 12
    brick_w = 2.15 * brick_h
    mortar = 0.14 * brick_h
    # Hand-laid courses are not ruler-straight: the joints wander by a few percent of a brick.
    wobble_x = _smooth_noise(rng, size, (2 * brick_h, 2 * brick_h)) * 0.03 * brick_h
    wobble_y = _smooth_noise(rng, size, (2 * brick_h, 2 * brick_h)) * 0.03 * brick_h
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    y = yy + rng.uniform(0, brick_h) + wobble_y
    row = np.floor(y / brick_h).astype(np.int64)
    x = xx + rng.uniform(0, brick_w) + wobble_x + (row % 2) * (brick_w / 2)
    column = np.floor(x / brick_w).astype(np.int64)
    in_mortar = ((y - row * brick_h) < mortar) | ((x - column * brick_w) < mortar)
    rows, columns = row.max() + 1, column.max() + 1
    tones = rng.lognormal(0, 0.13, (rows, columns))[..., None] * np.array((150, 72, 52))
    tones += rng.normal(0, 4, (rows, columns, 3))
    pixels = tones[row, column].astype(np.float32)
    pixels[in_mortar] = np.array((178, 172, 160), np.float32)
    dirt = 1 + 0.10 * _smooth_noise(rng, size, (width / 4, height / 4))
    pits = 1 + 0.08 * _smooth_noise(rng, size, (3, 3))
    return pixels * (dirt * pits)[..., None]


def _wood(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Four floor planks of growth rings bent by noise; instances differ in the rings' course."""
    width, height = size
    planks = 4
    plank_h = height / planks
    yy = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    plank = np.floor(yy / plank_h)
    rings = yy / plank_h * rng.uniform(5, 7) + plank * 17.3
    rings += 1.2 * _smooth_noise(rng, size, (width / 3, plank_h))
    rings += 0.25 * _smooth_noise(rng, size, (width / 12, plank_h / 4))
    ring = (np.sin(2 * np.pi * rings) + 1) / 2
    streaks = _smooth_noise(rng, size, (width / 8, 2))
    light, dark = np.array((196, 146, 96), np.float32), np.array((120, 74, 40), np.float32)
    share = np.clip(0.65 * ring**1.5 + 0.25 * (streaks + 1) / 2, 0, 1)[..., None]
    pixels = light * (1 - share) + dark * share
    joints = (yy - plank * plank_h) < max(1.0, height / 300)
    pixels[joints] *= 0.4
    return pixels


def _gravel(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Noise with one fixed power spectrum (a pebble-sized band over 1/f): every instance has the
    same statistics and only the random phases differ."""
    width, height = size
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(fx**2 + fy**2) * max(width, height)
    pebble = max(width, height) / 40  # cycles per image: stones about 1/40 of the frame across
    pebble_band = np.exp(-((frequency - pebble) ** 2) / (2 * (pebble / 3) ** 2))
    amplitude = 1 / (1 + frequency) + 3 * pebble_band / (1 + pebble)
    fields = []
    for _ in range(2):
        white = rng.standard_normal((height, width))
        field = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=(height, width))
        fields.append((field / field.std()).astype(np.float32))
    brightness, tint = fields
    base = np.array((128, 120, 108), np.float32)
    warm = np.array((18, 8, -6), np.float32)
    return base + 38 * brightness[..., None] + 0.6 * tint[..., None] * warm


_TEXTURES: dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]] = {
    "brick": _brick_wall,
    "wood": _wood,
    "gravel": _gravel,
}


def _textures(seed: int, scale: _Scale) -> Iterator[tuple[str, Image.Image]]:
    for kind, render in _TEXTURES.items():
        for instance in range(scale.texture_instances):
            rng = _np_rng(seed, "textures", kind, instance)
            pixels = _grain(np.clip(render(rng, scale.photo), 0, 255), rng, 3.0)
            yield f"{kind}_{instance}", Image.fromarray(pixels, "RGB")


# --- Writing -----------------------------------------------------------------------------------

_GENERATORS: dict[str, Callable[[int, _Scale], Iterator[tuple[str, Image.Image]]]] = {
    "forms": _forms,
    "pages": _pages,
    "frames": _frames,
    "scenes": _scenes,
    "textures": _textures,
}
_DOCUMENT_SETS = ("forms", "pages")  # saved losslessly as PNG, and each rescanned once


def write_lookalikes(
    out_dir: str | Path,
    *,
    seed: int,
    size: str = "full",
    sets: Sequence[str] = LOOKALIKE_SETS,
) -> list[LabelledImage]:
    """Write the look-alike sets into `out_dir` and return a label for every image written.

    `size` "full" is for benchmarks (A4 pages at 150 dpi, 1280x853 photos); "tiny" is for CI
    (half-size pages, 480x320 photos, fewer items). Every image is its own `source`, except that
    each form and page gets a `rescan` copy sharing its source. Files are `<set>_<item>.png` for
    documents and `.jpg` for photo-like sets; rescans are `<set>_<item>__rescan.jpg` (or `.png`).
    """
    if size not in _SCALES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(_SCALES)}")
    unknown = [name for name in sets if name not in _GENERATORS]
    if unknown:
        raise ValueError(f"unknown look-alike sets {unknown}; known: {', '.join(LOOKALIKE_SETS)}")
    scale = _SCALES[size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rescan = FAMILIES["rescan"]
    labels = []
    for set_name in sets:
        kind = f"lookalike:{set_name}"
        for item, image in _GENERATORS[set_name](seed, scale):
            source = f"{set_name}_{item}"
            if set_name in _DOCUMENT_SETS:
                path = out_dir / f"{source}.png"
                image.save(path, "PNG")
            else:
                path = out_dir / f"{source}.jpg"
                image.save(path, "JPEG", quality=PHOTO_JPEG_QUALITY)
            labels.append(LabelledImage(path, source, "original", kind))
            if set_name in _DOCUMENT_SETS:
                scanned = rescan.edit(image, random.Random(f"{seed}:{source}:rescan"))
                copy = save_copy(scanned, out_dir / f"{source}__rescan", rescan)
                labels.append(LabelledImage(copy, source, "rescan", kind))
    return labels


def write_form_fills(
    out_dir: str | Path, *, seed: int, count: int, size: str = "full"
) -> list[LabelledImage]:
    """`count` fills of one form template, each with one rescan sharing its source: the
    look-alike cluster that makes verification's work grow with its size (every fill scores up to
    0.98 against every other, its own rescan lower). For benchmarks of that cost
    (benchmarks/verify_scaling.py). Files are `fill_<n>.png` and `fill_<n>__rescan.<ext>`."""
    if size not in _SCALES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(_SCALES)}")
    scale = _SCALES[size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = _Vocabulary(_rng(seed, "form-vocabulary", 0), 200)
    template = _form_template(seed, 0, scale.page, vocabulary)
    unit = scale.page[0] / 1240
    rescan = FAMILIES["rescan"]
    labels = []
    for fill in range(count):
        source = f"fill_{fill:05d}"
        page = _filled_form(template, _rng(seed, "form-fill", 0, fill), vocabulary, unit)
        path = out_dir / f"{source}.png"
        page.save(path, "PNG")
        labels.append(LabelledImage(path, source, "original", "lookalike:forms"))
        scanned = rescan.edit(page, random.Random(f"{seed}:{source}:rescan"))
        copy = save_copy(scanned, out_dir / f"{source}__rescan", rescan)
        labels.append(LabelledImage(copy, source, "rescan", "lookalike:forms"))
    return labels
