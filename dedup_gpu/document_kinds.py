"""Everyday documents for the labelled benchmark: receipts, invoices, ID cards, letters and lab
reports, each kind from a few templates, each template filled as several records.

The records of one template differ only in a date and an amount (an ID card: in the date of
birth and the card number): two receipts from one shop, two invoices from one supplier, two
results of one patient. They are the hardest negatives a document archive has: deleting one as a
"duplicate" of the other loses a record. Every record also gets three copies that share its
source, as documents really get copied: `rescan` (printed and scanned again), `photographed`
(taken with a phone on a desk) and `faxed` (about 100 dpi, black and white, speckled). A dedup
tool must join each copy to its record and never join two records.

Drawn with Pillow and numpy (Pillow's bundled font, no downloads), seeded: the same seed writes
the same bytes. Pseudo-text, names, cities and logos come from lookalikes.py.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .lookalikes import (
    CITIES,
    FIRST_NAMES,
    INK,
    LAST_NAMES,
    PAPER,
    SOFT_GREY,
    Font,
    _draw_logo,
    _justified,
    _smooth_noise,
    _Vocabulary,
    _wrapped_lines,
)
from .synth import FAMILIES, LabelledImage, font, save_copy, stable_seed

DOCUMENT_KINDS: tuple[str, ...] = ("receipt", "invoice", "id_card", "letter", "lab_report")
COPY_FAMILIES: tuple[str, ...] = ("rescan", "photographed", "faxed")

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class _Scale:
    """How big and how many: "full" for benchmarks, "tiny" for CI."""

    templates: int  # per kind
    records: int  # per template
    resolution: float  # 1.0: pages at 150 dpi, cards at 300 dpi, receipts at 203 dpi


_SCALES = {"full": _Scale(2, 4, 1.0), "single": _Scale(1, 2, 1.0), "tiny": _Scale(1, 2, 0.5)}


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(f"{seed}:documents:" + ":".join(str(part) for part in parts))


def _np_rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(seed, "documents", *parts))


# --- What a record fills in --------------------------------------------------------------------

_DATE_STYLES = ("{d:02d}/{m:02d}/{y}", "{d:02d}.{m:02d}.{y}", "{y}-{m:02d}-{d:02d}")
_CURRENCIES = ("EUR {:,.2f}", "GBP {:,.2f}", "${:,.2f}", "{:,.2f} CHF")


@dataclass(frozen=True)
class _Slot:
    """Where a record's value goes: drawn by `draw` at a fixed anchor, so values of any width
    change only their own patch of the page."""

    key: str  # "date", "amount", "birth" or "number"
    draw: Callable[[ImageDraw.ImageDraw, str], None]


@dataclass(frozen=True)
class _Template:
    blank: Image.Image
    slots: tuple[_Slot, ...]
    values: Callable[[random.Random], dict[str, str]]  # a record's values
    finish: Callable[[Image.Image], Image.Image] | None = None  # the same for every record


def _date(rng: random.Random, style: str, years: tuple[int, int] = (2019, 2025)) -> str:
    return style.format(d=rng.randint(1, 28), m=rng.randint(1, 12), y=rng.randint(*years))


def _text_at(
    xy: tuple[float, float], text_font: Font, fill: Colour, anchor: str = "la", bold: bool = False
) -> Callable[[ImageDraw.ImageDraw, str], None]:
    def draw(canvas: ImageDraw.ImageDraw, value: str) -> None:
        canvas.text(
            xy,
            value,
            font=text_font,
            fill=fill,
            anchor=anchor,
            stroke_width=1 if bold else 0,
            stroke_fill=fill,
        )

    return draw


def _signature(
    draw: ImageDraw.ImageDraw, rng: random.Random, box: tuple[float, ...], fill: Colour
) -> None:
    """A handwritten-looking squiggle: loops of uneven size drifting to the right, a flourish."""
    left, top, right, bottom = box
    middle, half = (top + bottom) / 2, (bottom - top) / 2
    loops = rng.randint(3, 6)
    sizes = [rng.uniform(0.4, 1.0) for _ in range(loops)]
    points = []
    for step in range(loops * 24 + 1):
        t = step / 24
        size = sizes[min(loops - 1, int(t))]
        x = (
            left
            + (right - left) * 0.85 * t / loops
            + (right - left) / loops * 0.3 * size * (math.cos(t * 2 * math.pi))
        )
        y = middle + half * 0.8 * size * math.sin(t * 2 * math.pi + 0.4 * math.sin(t * 1.7))
        points.append((x, y))
    points.append((right, middle - half * rng.uniform(0.1, 0.6)))  # the closing stroke
    draw.line(points, fill=fill, width=max(1, round((bottom - top) / 18)), joint="curve")


def _company(vocabulary: _Vocabulary, rng: random.Random) -> str:
    return vocabulary.title(rng, 2) + rng.choice((" Ltd", " GmbH", " S.A.", " & Co", " BV"))


def _street(vocabulary: _Vocabulary, rng: random.Random) -> str:
    return f"{rng.randint(1, 240)} {vocabulary.title(rng, 1)} {rng.choice(('Street', 'Road'))}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


# --- Receipts ----------------------------------------------------------------------------------

_SHOP_ITEMS = (
    "MILK 1L", "BREAD WHOLEMEAL", "APPLES 1KG", "COFFEE BEANS", "PASTA 500G", "TOMATOES",
    "OLIVE OIL", "EGGS X12", "CHEESE GOUDA", "BANANAS", "YOGHURT", "RICE 1KG", "TEA BAGS",
    "CHOCOLATE", "WATER 6X1.5L", "BUTTER", "ORANGE JUICE", "SOAP", "BATTERIES AA", "NEWSPAPER",
)  # fmt: skip


def _monospaced(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    text: str,
    text_font: Font,
    pitch: float,
    fill: Colour,
    *,
    right: bool = False,
) -> None:
    """Text on a fixed character grid, as a thermal printer prints it (each letter centred in
    its cell); with `right`, the last cell ends at x."""
    start = x - pitch * len(text) if right else x
    for index, letter in enumerate(text):
        if letter != " ":
            draw.text(
                (start + (index + 0.5) * pitch, y), letter, font=text_font, fill=fill, anchor="ma"
            )


def _receipt(seed: int, index: int, resolution: float) -> _Template:
    """A supermarket till receipt: narrow and tall, monospaced, slightly grey thermal paper with
    uneven, fading print."""
    rng = _rng(seed, "receipt", index)
    vocabulary = _Vocabulary(_rng(seed, "receipt-vocabulary", index), 200)
    width = round(576 * resolution)  # 72 mm printable at 203 dpi
    unit = width / 576
    columns = 32
    margin = 24 * unit
    pitch = (width - 2 * margin) / columns
    line_h = 30 * unit
    items = rng.sample(_SHOP_ITEMS, rng.randint(9, 16))
    height = round((30 + 2 * len(items)) * line_h + 400 * unit)  # cut to length at the end
    paper = (246, 244, 238)
    ink = (45, 45, 50)
    page = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(page)
    small = font(22 * unit)
    y = 40 * unit
    shop = vocabulary.title(rng, 1).upper() + rng.choice((" MARKET", " FOODS", " STORES"))
    draw.text(
        (width / 2, y),
        shop,
        font=font(40 * unit),
        fill=ink,
        anchor="ma",
        stroke_width=1,
        stroke_fill=ink,
    )
    y += 64 * unit

    def centred(text: str) -> None:
        nonlocal y
        _monospaced(draw, (width - pitch * len(text)) / 2, y, text, small, pitch, ink)
        y += line_h

    def row(left: str, right: str = "") -> None:
        nonlocal y
        _monospaced(draw, margin, y, left, small, pitch, ink)
        if right:
            _monospaced(draw, width - margin, y, right, small, pitch, ink, right=True)
        y += line_h

    centred(_street(vocabulary, rng).upper()[:columns])
    centred(f"{rng.randint(10000, 99999)} {rng.choice(CITIES).upper()}")
    centred(f"TEL {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}")
    centred(f"VAT NO {rng.randint(100000000, 999999999)}")
    y += line_h / 2
    date_slot = _Slot("date", _mono_slot(margin, y, small, pitch, ink))
    row("", f"TILL {rng.randint(1, 9)} OP {rng.randint(10, 99)}")
    row("-" * columns)
    for item in items:
        count = rng.choice((1, 1, 1, 2, 3))
        price = rng.uniform(0.4, 12)
        row(item, f"{count * price:.2f}")
        if count > 1:
            row(f"  {count} @ {price:.2f}")
    row("-" * columns)
    row(f"{len(items)} ITEMS")
    big = font(32 * unit)
    draw.text((margin, y), "TOTAL", font=big, fill=ink, stroke_width=1, stroke_fill=ink)
    total_slot = _Slot("amount", _text_at((width - margin, y), big, ink, anchor="ra", bold=True))
    y += 56 * unit
    row("PAID BY CARD", f"VISA ****{rng.randint(1000, 9999)}")
    row(f"AUTH CODE {rng.randint(100000, 999999)}")
    row("VAT A 20%  VAT B 5%  INCLUDED")
    row("LOYALTY POINTS", str(rng.randint(10, 2000)))
    y += line_h / 2
    centred("CUSTOMER COPY")
    centred("RETURNS WITHIN 30 DAYS")
    centred("WITH THIS RECEIPT")
    centred(f"OPEN MON-SAT {rng.randint(7, 9)}-{rng.randint(19, 22)}")
    y += line_h / 2
    centred("THANK YOU FOR SHOPPING")
    centred(f"RECEIPT {rng.randint(1000, 9999)}-{rng.randint(100000, 999999)}")
    y += line_h / 2
    x = margin * 2
    while x < width - 2 * margin:  # a barcode
        bar = rng.choice((1, 1, 2, 3)) * unit * 2
        draw.rectangle((x, y, x + bar, y + 70 * unit), fill=ink)
        x += bar + rng.choice((1, 2, 3)) * unit * 2
    page = page.crop((0, 0, width, round(y + 150 * unit)))  # the printer cuts after the barcode
    height = page.height
    date_style = rng.choice(_DATE_STYLES)
    currency = rng.choice(_CURRENCIES)
    fade = _np_rng(seed, "receipt-fade", index)

    def values(record: random.Random) -> dict[str, str]:
        time = f"{record.randint(7, 21):02d}:{record.randint(0, 59):02d}"
        return {
            "date": f"{_date(record, date_style)} {time}",
            "amount": currency.format(record.uniform(3, 180)),
        }

    # The print head's uneven heat, the same on every receipt of this shop's till.
    strength = 0.75 + 0.25 * _smooth_noise(fade, (width, height), (width / 2, height / 6))

    def finish(receipt: Image.Image) -> Image.Image:
        pixels = np.asarray(receipt, dtype=np.float32)
        paper_tone = np.array(paper, np.float32)
        faded = paper_tone - (paper_tone - pixels) * np.clip(strength, 0.4, 1)[..., None]
        return Image.fromarray(np.clip(faded, 0, 255).astype(np.uint8), "RGB")

    return _Template(page, (date_slot, total_slot), values, finish)


def _mono_slot(
    x: float, y: float, text_font: Font, pitch: float, fill: Colour
) -> Callable[[ImageDraw.ImageDraw, str], None]:
    def draw(canvas: ImageDraw.ImageDraw, value: str) -> None:
        _monospaced(canvas, x, y, value, text_font, pitch, fill)

    return draw


# --- Invoices ----------------------------------------------------------------------------------


def _letterhead(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    vocabulary: _Vocabulary,
    width: int,
    unit: float,
    margin: float,
) -> tuple[str, float]:
    """Logo, company name and address across the top of a page; returns the name and where
    the letterhead ends."""
    logo = round(100 * unit)
    _draw_logo(
        draw, rng, (round(margin), round(margin), round(margin + logo), round(margin + logo))
    )
    company = _company(vocabulary, rng)
    draw.text(
        (margin + logo + 24 * unit, margin + 4 * unit), company, font=font(38 * unit), fill=INK
    )
    lines = (
        _street(vocabulary, rng),
        f"{rng.randint(10000, 99999)} {rng.choice(CITIES)}",
        f"info@{company.split()[0].lower()}.example | +44 20 7946 {rng.randint(1000, 9999)}",
    )
    y = margin
    for line in lines:
        draw.text((width - margin, y), line, font=font(19 * unit), fill=INK, anchor="ra")
        y += 28 * unit
    return company, margin + logo + 30 * unit


def _invoice(seed: int, index: int, resolution: float) -> _Template:
    """A supplier's invoice: letterhead, invoice details, the customer, a table of items and
    the totals; a record is another invoice date and total due."""
    rng = _rng(seed, "invoice", index)
    vocabulary = _Vocabulary(_rng(seed, "invoice-vocabulary", index), 200)
    width, height = round(1240 * resolution), round(1754 * resolution)
    unit = width / 1240
    margin = 90 * unit
    page = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(page)
    company, y = _letterhead(draw, rng, vocabulary, width, unit, margin)
    accent = rng.choice(((30, 80, 160), (170, 40, 40), (20, 120, 90), (60, 60, 60)))
    draw.line((margin, y, width - margin, y), fill=accent, width=max(1, round(4 * unit)))
    y += 40 * unit
    draw.text((margin, y), "INVOICE", font=font(56 * unit), fill=accent)
    label, value = font(21 * unit), font(23 * unit)
    details_x, values_x = width * 0.56, width * 0.74
    rows = (
        (
            "Invoice no.",
            f"{rng.choice('ABCKRT')}{rng.randint(2019, 2025)}-{rng.randint(100, 9999)}",
        ),
        ("Date", None),
        ("Customer no.", str(rng.randint(10000, 99999))),
        ("Payment terms", f"{rng.choice((14, 30, 60))} days net"),
    )
    slots = []
    for offset, (name, text) in enumerate(rows):
        row_y = y + offset * 34 * unit
        draw.text((details_x, row_y), name, font=label, fill=INK)
        if text is None:
            slots.append(_Slot("date", _text_at((values_x, row_y), value, INK)))
        else:
            draw.text((values_x, row_y), text, font=value, fill=INK)
    y += 180 * unit
    draw.text((margin, y), "Bill to", font=label, fill=(110, 110, 110))
    customer = (
        _person(rng),
        _company(vocabulary, rng),
        _street(vocabulary, rng),
        f"{rng.randint(10000, 99999)} {rng.choice(CITIES)}",
    )
    for offset, line in enumerate(customer):
        draw.text((margin, y + (offset + 1) * 32 * unit), line, font=value, fill=INK)
    y += 200 * unit
    columns = (("Description", 0.0), ("Qty", 0.55), ("Unit price", 0.72), ("Amount", 1.0))
    inner = width - 2 * margin
    row_h = 44 * unit
    draw.rectangle((margin, y, width - margin, y + row_h), fill=SOFT_GREY)
    for name, share in columns:
        x = margin + share * inner
        anchor = "lm" if share == 0 else "rm"
        draw.text(
            (x + (12 if share == 0 else -12) * unit, y + row_h / 2),
            name,
            font=label,
            fill=INK,
            anchor=anchor,
        )
    y += row_h
    currency = rng.choice(_CURRENCIES)
    subtotal = 0.0
    for _ in range(rng.randint(4, 9)):
        quantity, price = rng.randint(1, 20), rng.uniform(8, 400)
        subtotal += quantity * price
        cells = (
            vocabulary.title(rng, rng.randint(2, 4)),
            str(quantity),
            f"{price:,.2f}",
            f"{quantity * price:,.2f}",
        )
        for (_, share), text in zip(columns, cells, strict=True):
            x = margin + share * inner
            anchor = "lm" if share == 0 else "rm"
            draw.text(
                (x + (12 if share == 0 else -12) * unit, y + row_h / 2),
                text,
                font=value,
                fill=INK,
                anchor=anchor,
            )
        y += row_h
        draw.line((margin, y, width - margin, y), fill=SOFT_GREY, width=max(1, round(unit)))
    y += 30 * unit
    totals_x = margin + 0.55 * inner
    for name, amount in (("Subtotal", subtotal), ("VAT 20%", subtotal * 0.2)):
        draw.text((totals_x, y), name, font=value, fill=INK)
        draw.text(
            (width - margin - 12 * unit, y), f"{amount:,.2f}", font=value, fill=INK, anchor="ra"
        )
        y += 38 * unit
    draw.line((totals_x, y, width - margin, y), fill=INK, width=max(1, round(2 * unit)))
    y += 14 * unit
    big = font(28 * unit)
    draw.text((totals_x, y), "Total due", font=big, fill=INK, stroke_width=1, stroke_fill=INK)
    slots.append(
        _Slot("amount", _text_at((width - margin - 12 * unit, y), big, INK, "ra", bold=True))
    )
    footer_y = height - margin - 90 * unit
    draw.line((margin, footer_y, width - margin, footer_y), fill=accent, width=max(1, round(unit)))
    iban = f"IBAN GB{rng.randint(10, 99)} {vocabulary.title(rng, 1)[:4].upper()} " + " ".join(
        str(rng.randint(1000, 9999)) for _ in range(4)
    )
    for offset, line in enumerate(
        (f"Please pay to {company}", iban, "Thank you for your business.")
    ):
        draw.text(
            (margin, footer_y + (16 + 30 * offset) * unit), line, font=font(19 * unit), fill=INK
        )
    date_style = rng.choice(_DATE_STYLES)

    def values(record: random.Random) -> dict[str, str]:
        return {
            "date": _date(record, date_style),
            "amount": currency.format(record.uniform(50, 20000)),
        }

    return _Template(page, tuple(slots), values)


# --- ID cards ----------------------------------------------------------------------------------

_COUNTRY_SYLLABLES = ("Vel", "Mar", "Ost", "Tar", "Bel", "Cor", "Nor", "Lum", "Sar", "Dor")


def _guilloche(size: tuple[int, int], rng: random.Random, ground: Colour, line: Colour):
    """Security-print background: a soft two-colour gradient under rosettes of fine wavy lines."""
    width, height = size
    share = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    other = tuple(min(255, c + rng.randint(-25, 10)) for c in ground)
    pixels = np.array(ground, np.float32) * (1 - share) + np.array(other, np.float32) * share
    card = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(card)
    centre = (rng.uniform(0.55, 0.8) * width, rng.uniform(0.4, 0.7) * height)
    petals, waves = rng.randint(5, 9), rng.randint(18, 30)
    for ring in range(26):
        base = (0.15 + ring * 0.035) * height
        phase = ring * 0.21
        points = []
        for step in range(361):
            angle = math.radians(step)
            radius = base * (
                1 + 0.18 * math.sin(petals * angle + phase)
            ) + 0.02 * height * math.sin(waves * angle)
            points.append(
                (centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
            )
        draw.line(points, fill=line, width=1)
    for wave in range(14):  # horizontal waves across the whole card
        y0 = (wave + 0.5) / 14 * height
        points = [
            (x, y0 + 0.015 * height * math.sin(x / width * 2 * math.pi * 6 + wave))
            for x in np.linspace(0, width, 200)
        ]
        draw.line(points, fill=line, width=1)
    return card


def _portrait(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A passport-style portrait placeholder: shoulders, a neck, a head, hair, eyes, a mouth."""
    w, h = size
    portrait = Image.new("RGB", size, (215, 222, 230))
    draw = ImageDraw.Draw(portrait)
    clothes = rng.choice(((40, 50, 70), (70, 40, 40), (50, 50, 50), (30, 70, 60)))
    skin = rng.choice(((235, 200, 170), (200, 150, 115), (150, 100, 70), (110, 75, 55)))
    hair = rng.choice(((30, 25, 20), (90, 60, 30), (160, 120, 60), (120, 120, 120)))
    draw.ellipse((0.05 * w, 0.76 * h, 0.95 * w, 1.4 * h), fill=clothes)
    draw.rectangle((0.42 * w, 0.6 * h, 0.58 * w, 0.82 * h), fill=skin)
    head = (0.27 * w, 0.2 * h, 0.73 * w, 0.68 * h)
    draw.ellipse((0.24 * w, 0.14 * h, 0.76 * w, 0.48 * h), fill=hair)
    draw.ellipse(head, fill=skin)
    for eye_x in (0.4 * w, 0.6 * w):
        draw.ellipse((eye_x - 0.03 * w, 0.405 * h, eye_x + 0.03 * w, 0.435 * h), fill=(40, 40, 40))
    draw.line((0.44 * w, 0.56 * h, 0.56 * w, 0.56 * h), fill=(150, 70, 70), width=max(1, h // 70))
    return portrait


def _id_card(seed: int, index: int, resolution: float) -> _Template:
    """A national identity card (85.6 x 54 mm at 300 dpi): guilloche background, a header band,
    a portrait, name and details; a record is another date of birth and card number."""
    rng = _rng(seed, "id_card", index)
    width, height = round(1011 * resolution), round(638 * resolution)
    unit = width / 1011
    hue = rng.choice(
        (
            ((214, 230, 240), (170, 195, 220)),
            ((235, 225, 205), (210, 190, 160)),
            ((220, 235, 215), (175, 205, 170)),
            ((238, 220, 230), (215, 180, 200)),
        )
    )
    card = _guilloche((width, height), rng, hue[0], hue[1])
    draw = ImageDraw.Draw(card)
    band = rng.choice(((20, 50, 110), (110, 30, 40), (20, 80, 60)))
    band_h = 92 * unit
    draw.rectangle((0, 0, width, band_h), fill=band)
    country = "".join(rng.sample(_COUNTRY_SYLLABLES, 2)).capitalize() + rng.choice(
        ("ia", "and", "ova")
    )
    draw.text(
        (30 * unit, 14 * unit),
        f"REPUBLIC OF {country.upper()}",
        font=font(30 * unit),
        fill=(255, 255, 255),
    )
    draw.text(
        (30 * unit, 54 * unit),
        "IDENTITY CARD / CARTE D'IDENTITE",
        font=font(20 * unit),
        fill=(220, 220, 220),
    )
    emblem = (width - 80 * unit, 14 * unit, width - 18 * unit, 76 * unit)
    draw.ellipse(emblem, outline=(230, 200, 90), width=max(1, round(4 * unit)))
    card.paste(
        _portrait(rng, (round(250 * unit), round(320 * unit))),
        (round(30 * unit), round(120 * unit)),
    )
    label, value = font(17 * unit), font(27 * unit)
    grey = (90, 90, 100)
    x = 320 * unit
    surname, given = rng.choice(LAST_NAMES).upper(), rng.choice(FIRST_NAMES).upper()
    slots = []
    fields = (
        ("Surname / Nom", surname, 0),
        ("Given names / Prenoms", given, 0),
        ("Sex", rng.choice("MF"), 0),
        ("Nationality", country[:3].upper(), 1),
        ("Date of birth", None, 0),
        ("Date of expiry", None, 1),
    )
    date_style = rng.choice(_DATE_STYLES[:2])
    expiry = _date(rng, date_style, (2027, 2034))
    y = 118 * unit
    for name, text, column in fields:
        fx = x + column * 300 * unit
        draw.text((fx, y), name, font=label, fill=grey)
        if name == "Date of birth":
            slots.append(_Slot("birth", _text_at((fx, y + 22 * unit), value, INK, bold=True)))
        elif name == "Date of expiry":
            draw.text(
                (fx, y + 22 * unit), expiry, font=value, fill=INK, stroke_width=1, stroke_fill=INK
            )
        else:
            draw.text(
                (fx, y + 22 * unit), text, font=value, fill=INK, stroke_width=1, stroke_fill=INK
            )
        if column == 1 or name in ("Surname / Nom", "Given names / Prenoms"):
            y += 70 * unit
    draw.text((x, y), "Card No. / No de carte", font=label, fill=grey)
    slots.append(
        _Slot("number", _text_at((x, y + 22 * unit), font(30 * unit), (150, 30, 40), bold=True))
    )
    draw.text((30 * unit, 478 * unit), "Signature", font=label, fill=grey)
    _signature(draw, rng, (40 * unit, 500 * unit, 270 * unit, 580 * unit), (30, 40, 90))
    draw.rectangle((0, height - 24 * unit, width, height), fill=band)
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))

    def values(record: random.Random) -> dict[str, str]:
        return {
            "birth": _date(record, date_style, (1940, 2006)),
            "number": f"{letters}{record.randint(1000000, 9999999)}",
        }

    return _Template(card, tuple(slots), values)


# --- Letters -----------------------------------------------------------------------------------


def _letter(seed: int, index: int, resolution: float) -> _Template:
    """A business letter: letterhead, date, recipient, subject, body text with the amount on a
    line of its own, signature; a record is another date and amount."""
    rng = _rng(seed, "letter", index)
    vocabulary = _Vocabulary(_rng(seed, "letter-vocabulary", index))
    width, height = round(1240 * resolution), round(1754 * resolution)
    unit = width / 1240
    margin = 140 * unit
    page = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(page)
    company, y = _letterhead(draw, rng, vocabulary, width, unit, 90 * unit)
    body = font(23 * unit)
    line_h = 36 * unit
    y += 60 * unit
    recipient = (
        _person(rng),
        _street(vocabulary, rng),
        f"{rng.randint(10000, 99999)} {rng.choice(CITIES)}",
    )
    for offset, line in enumerate(recipient):
        draw.text((margin, y + offset * line_h), line, font=body, fill=INK)
    city = rng.choice(CITIES)
    date_x = width * 0.62
    prefix = f"{city}, "
    draw.text((date_x, y), prefix, font=body, fill=INK)
    slots = [_Slot("date", _text_at((date_x + body.getlength(prefix), y), body, INK))]
    y += 5 * line_h
    reference = f"{rng.choice('ABKR')}{rng.choice('XYZ')}-{rng.randint(100000, 999999)}"
    subject = f"Re: {vocabulary.title(rng, 2)} - reference {reference}"
    draw.text((margin, y), subject, font=body, fill=INK, stroke_width=1, stroke_fill=INK)
    y += 2 * line_h
    draw.text((margin, y), f"Dear {recipient[0]},", font=body, fill=INK)
    y += 1.6 * line_h
    text_width = width - 2 * margin
    amount_after = rng.randint(0, 1)
    for paragraph in range(rng.randint(3, 4)):
        words = " ".join(vocabulary.sentence(rng) for _ in range(rng.randint(2, 4))).split()
        lines = _wrapped_lines(words, body.getlength, text_width, 0)
        for number, line in enumerate(lines):
            _justified(
                draw, line, margin, y, text_width, justify=number < len(lines) - 1, text_font=body
            )
            y += line_h
        y += 0.6 * line_h
        if paragraph == amount_after:
            label = rng.choice(("Amount due:", "Amount paid:", "Outstanding balance:"))
            draw.text((margin + 60 * unit, y), label, font=body, fill=INK)
            slots.append(_Slot("amount", _text_at((margin + 420 * unit, y), body, INK, bold=True)))
            y += 1.6 * line_h
    y += 0.5 * line_h
    draw.text((margin, y), "Yours sincerely,", font=body, fill=INK)
    _signature(
        draw, rng, (margin, y + 40 * unit, margin + 300 * unit, y + 120 * unit), (25, 35, 90)
    )
    signer = _person(rng)
    draw.text((margin, y + 140 * unit), signer, font=body, fill=INK)
    draw.text(
        (margin, y + 140 * unit + line_h),
        f"{vocabulary.title(rng, 1)} Manager, {company}",
        font=font(19 * unit),
        fill=INK,
    )
    date_style = rng.choice(_DATE_STYLES)
    currency = rng.choice(_CURRENCIES)

    def values(record: random.Random) -> dict[str, str]:
        return {
            "date": _date(record, date_style),
            "amount": currency.format(record.uniform(20, 9000)),
        }

    return _Template(page, tuple(slots), values)


# --- Lab reports -------------------------------------------------------------------------------

_TESTS = (  # name, unit, low, high, decimals
    ("Haemoglobin", "g/dL", 13.0, 17.0, 1),
    ("White cell count", "10^9/L", 4.0, 11.0, 1),
    ("Platelets", "10^9/L", 150, 400, 0),
    ("Sodium", "mmol/L", 135, 145, 0),
    ("Potassium", "mmol/L", 3.5, 5.1, 1),
    ("Creatinine", "umol/L", 60, 110, 0),
    ("Glucose (fasting)", "mmol/L", 3.9, 5.6, 1),
    ("Cholesterol, total", "mmol/L", 3.0, 5.0, 1),
    ("HDL cholesterol", "mmol/L", 1.0, 2.2, 2),
    ("Triglycerides", "mmol/L", 0.5, 1.7, 2),
    ("ALT", "U/L", 7, 56, 0),
    ("TSH", "mU/L", 0.4, 4.0, 2),
    ("C-reactive protein", "mg/L", 0.1, 5.0, 1),
    ("Ferritin", "ug/L", 30, 400, 0),
    ("HbA1c", "%", 4.0, 5.6, 1),
    ("Vitamin D", "nmol/L", 50, 125, 0),
)


def _lab_report(seed: int, index: int, resolution: float) -> _Template:
    """A laboratory report: lab letterhead, patient details, collection date, a table of results
    with reference ranges and flags; a record is another collection date and one other result."""
    rng = _rng(seed, "lab_report", index)
    vocabulary = _Vocabulary(_rng(seed, "lab-vocabulary", index), 200)
    width, height = round(1240 * resolution), round(1754 * resolution)
    unit = width / 1240
    margin = 90 * unit
    page = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(page)
    _, y = _letterhead(draw, rng, vocabulary, width, unit, margin)
    draw.text(
        (width / 2, y + 10 * unit), "LABORATORY REPORT", font=font(40 * unit), fill=INK, anchor="ma"
    )
    y += 80 * unit
    label, value = font(20 * unit), font(22 * unit)
    date_style = rng.choice(_DATE_STYLES)
    left = (
        ("Patient", _person(rng)),
        ("Date of birth", _date(rng, date_style, (1940, 2005))),
        ("Patient ID", f"{rng.randint(1000000, 9999999)}"),
    )
    right = (
        ("Requested by", f"Dr {rng.choice(LAST_NAMES)}"),
        ("Collected", None),
        ("Sample", rng.choice(("Venous blood", "Serum", "Plasma"))),
    )
    slots = []
    draw.rectangle(
        (margin, y, width - margin, y + 130 * unit), outline=INK, width=max(1, round(unit))
    )
    for column, fields in enumerate((left, right)):
        x = margin + 20 * unit + column * (width - 2 * margin) / 2
        for offset, (name, text) in enumerate(fields):
            row_y = y + 16 * unit + offset * 36 * unit
            draw.text((x, row_y), f"{name}:", font=label, fill=(90, 90, 90))
            if text is None:
                slots.append(_Slot("date", _text_at((x + 190 * unit, row_y), value, INK)))
            else:
                draw.text((x + 190 * unit, row_y), text, font=value, fill=INK)
    y += 170 * unit
    columns = (
        ("Test", 0.0),
        ("Result", 0.5),
        ("Units", 0.54),
        ("Reference range", 0.72),
        ("Flag", 0.92),
    )
    inner = width - 2 * margin
    row_h = 42 * unit
    draw.rectangle((margin, y, width - margin, y + row_h), fill=SOFT_GREY)
    for name, share in columns:
        anchor = "rm" if name == "Result" else "lm"
        draw.text(
            (margin + share * inner + 10 * unit * (anchor == "lm"), y + row_h / 2),
            name,
            font=label,
            fill=INK,
            anchor=anchor,
        )
    y += row_h
    tests = rng.sample(_TESTS, rng.randint(9, 14))
    varying = rng.randrange(len(tests))
    for number, (name, units, low, high, decimals) in enumerate(tests):
        middle = y + row_h / 2
        result_x = margin + 0.5 * inner
        if number == varying:
            slots.append(_Slot("amount", _text_at((result_x, middle), value, INK, "rm")))
            flag = ""
        else:
            result = rng.uniform(low * 0.8, high * 1.2)
            flag = "H" if result > high else "L" if result < low else ""
            draw.text(
                (result_x, middle),
                f"{result:.{decimals}f}",
                font=value,
                fill=INK,
                anchor="rm",
                stroke_width=1 if flag else 0,
                stroke_fill=INK,
            )
        cells = (
            (name, 0.0),
            (units, 0.54),
            (f"{low:.{decimals}f} - {high:.{decimals}f}", 0.72),
            (flag, 0.92),
        )
        for text, share in cells:
            draw.text(
                (margin + share * inner + 10 * unit, middle),
                text,
                font=value,
                fill=INK,
                anchor="lm",
            )
        y += row_h
        draw.line((margin, y, width - margin, y), fill=SOFT_GREY, width=max(1, round(unit)))
    y += 40 * unit
    draw.text((margin, y), "H = above, L = below the reference range.", font=label, fill=INK)
    footer_y = height - margin - 120 * unit
    draw.text((margin, footer_y), "Validated by", font=label, fill=INK)
    _signature(
        draw,
        rng,
        (margin, footer_y + 30 * unit, margin + 260 * unit, footer_y + 100 * unit),
        (25, 35, 90),
    )
    draw.text(
        (width - margin, footer_y + 80 * unit), "Page 1 of 1", font=label, fill=INK, anchor="ra"
    )
    _, _, low, high, decimals = tests[varying]

    def values(record: random.Random) -> dict[str, str]:
        return {
            "date": _date(record, date_style),
            "amount": f"{record.uniform(low, high):.{decimals}f}",
        }

    return _Template(page, tuple(slots), values)


_TEMPLATES: dict[str, Callable[[int, int, float], _Template]] = {
    "receipt": _receipt,
    "invoice": _invoice,
    "id_card": _id_card,
    "letter": _letter,
    "lab_report": _lab_report,
}


# --- Writing -----------------------------------------------------------------------------------


def _records(template: _Template, seed: int, name: str, count: int) -> list[Image.Image]:
    """`count` fills of `template`, each with values no other record of it has."""
    records, seen = [], set()
    attempt = 0
    while len(records) < count:
        values = template.values(_rng(seed, name, "record", attempt))
        attempt += 1
        if any((key, text) in seen for key, text in values.items()):
            continue  # every record differs from every other in each of its values
        seen.update(values.items())
        page = template.blank.copy()
        draw = ImageDraw.Draw(page)
        for slot in template.slots:
            slot.draw(draw, values[slot.key])
        records.append(template.finish(page) if template.finish else page)
    return records


def write_documents(
    out_dir: str | Path,
    *,
    seed: int,
    size: str = "full",
    kinds: Sequence[str] = DOCUMENT_KINDS,
) -> list[LabelledImage]:
    """Write every record as `<kind>_t<template>_r<record>.png` and its copies as
    `<kind>_t<template>_r<record>__<family>.<ext>` into `out_dir`; return their labels.

    `size` "full" is for benchmarks (2 templates of each kind, 4 records each; pages at
    150 dpi); "single" is 1 template and 2 records at that resolution; "tiny" is for CI (1
    template, 2 records, half the resolution). Each record is its own source, shared by its
    `rescan`, `photographed` and `faxed` copies; the kind of every image is "document:<kind>".
    """
    if size not in _SCALES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(_SCALES)}")
    unknown = [kind for kind in kinds if kind not in _TEMPLATES]
    if unknown:
        raise ValueError(f"unknown document kinds {unknown}; known: {', '.join(DOCUMENT_KINDS)}")
    scale = _SCALES[size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    for kind in kinds:
        for template_index in range(scale.templates):
            template = _TEMPLATES[kind](seed, template_index, scale.resolution)
            name = f"{kind}_t{template_index}"
            for number, record in enumerate(_records(template, seed, name, scale.records)):
                source = f"{name}_r{number}"
                label_kind = f"document:{kind}"
                path = out_dir / f"{source}.png"
                record.save(path, "PNG")
                labels.append(LabelledImage(path, source, "original", label_kind))
                for family_name in COPY_FAMILIES:
                    family = FAMILIES[family_name]
                    copy = family.edit(record, random.Random(f"{seed}:{source}:{family_name}"))
                    target = save_copy(copy, out_dir / f"{source}__{family_name}", family)
                    labels.append(LabelledImage(target, source, family_name, label_kind))
    return labels
