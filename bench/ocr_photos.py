"""Photos with words in them, generated for ``bench.ocr``: each a busy background (colour noise, a
gradient, a synthetic-world scene blown up, or a crop of a real photo scikit-image ships) with 1-4
words of a fixed list rendered in DejaVu fonts, 10-80 px high, turned up to 15 degrees, saved as
JPEG at quality 60-95; some photos carry no words at all. ``truth.jsonl`` holds, per photo, every
word as rendered, its height in pixels (the ink's height before turning) and its corners.

Everything is drawn from one ``numpy.random.Generator``: same seed, same files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerifCondensed.ttf")
# Signs, shop fronts, receipts and tickets; accented words (folded to plain letters by search) and numbers.
WORDS = (
    "coffee", "market", "bakery", "station", "library", "pharmacy", "museum", "airport", "hotel", "parking",
    "ticket", "platform", "garden", "harbour", "cinema", "theatre", "kitchen", "receipt", "invoice", "total",
    "open", "closed", "exit", "sale", "menu", "welcome", "street", "avenue", "bridge", "river", "school",
    "office", "police", "taxi", "metro", "pizza", "bread", "cheese", "wine", "fresh", "fruit", "bicycle",
    "café", "crème", "brûlée", "déjà", "élève", "garçon", "façade", "señor", "mañana", "über", "München",
    "Zürich", "Köln", "naïve", "Málaga", "Bogotá", "Orléans", "Genève", "Straße", "Ålesund",
    "2024", "1984", "75008", "365", "1250", "90210", "404", "8848",
)
BUCKETS = ((10, 15), (15, 20), (20, 30), (30, 50), (50, 80))  # word heights in pixels, [low, high)
CANVASES = ((400, 300), (640, 480), (800, 600), (1024, 768), (480, 640), (1280, 960), (2400, 1800), (4032, 3024))
CANVAS_P = (0.1, 0.14, 0.14, 0.14, 0.14, 0.14, 0.1, 0.1)  # a fifth as large as camera photos (4.3 MP, 12 MP)
BACKGROUNDS = ("noise", "gradient", "scene", "photo")
# The real photos of scikit-image's wheel with no text in them (a background crop must not add words).
TEXTLESS = ("astronaut", "brick", "chelsea", "coffee", "grass", "gravel", "hubble_deep_field", "retina",
            "rocket", "immunohistochemistry", "moon", "cell")
MAX_ANGLE = 15.0
NO_TEXT_SHARE = 0.25


@dataclass
class Word:
    text: str  # as rendered (case applied)
    height: float  # ink height in pixels, before turning
    angle: float  # degrees, counter-clockwise
    font: str
    box: list[list[float]]  # the turned ink box's four corners in the photo's pixels


@lru_cache(maxsize=256)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


def _ink(text: str, font: str, size: int) -> np.ndarray:
    """The word drawn white on black at ``size`` points, cropped to its ink: float alpha [h, w]."""
    f = _font(font, size)
    left, top, right, bottom = f.getbbox(text)
    canvas = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(canvas).text((4 - left, 4 - top), text, font=f, fill=255)
    a = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(a.max(axis=1) > 0.2)[0], np.nonzero(a.max(axis=0) > 0.2)[0]
    return a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def ink_of_height(text: str, font: str, height: float) -> np.ndarray:
    """The word's ink about ``height`` pixels high (the font size scaled from a first try)."""
    first = _ink(text, font, 100)
    size = max(4, round(100 * height / first.shape[0]))
    return _ink(text, font, size)


def _turned(alpha: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The ink turned by ``angle`` degrees (canvas grown to fit) and its ink box's corners there."""
    h, w = alpha.shape
    img = Image.fromarray(np.uint8(np.clip(alpha * 255, 0, 255)), "L")
    turned = np.asarray(img.rotate(angle, resample=Image.BICUBIC, expand=True), dtype=np.float32) / 255.0
    th, tw = turned.shape
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])  # y down: counter-clockwise
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64) - [w / 2, h / 2]
    return turned, corners @ rot.T + [tw / 2, th / 2]


def background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A busy background ``[h, w, 3]`` float32 in 0..255."""
    w, h = size
    if kind == "noise":
        base = rng.uniform(30, 225, 3)
        sigma = rng.uniform(15, 45)
        small = rng.normal(0, sigma, (h // 2 + 1, w // 2 + 1, 3))  # grain two pixels wide
        grain = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:h, :w]
        return np.clip(base + grain + rng.normal(0, sigma / 2, (h, w, 3)), 0, 255).astype(np.float32)
    if kind == "gradient":
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        return (a + t[..., None] * (b - a) + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.float32)
    if kind == "scene":
        from mkt.synthetic import render_array, sample_scene

        small = Image.fromarray(render_array(sample_scene(rng), rng))
        resample = Image.NEAREST if rng.random() < 0.5 else Image.BILINEAR
        return np.asarray(small.resize((w, h), resample), dtype=np.float32)
    if kind == "photo":
        photo = real_photo(TEXTLESS[int(rng.integers(len(TEXTLESS)))])
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.5, 1.0)
        cw, ch = max(32, int(pw * scale)), max(32, int(min(ph, pw * h / w) * scale))
        x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, max(1, ph - ch + 1)))
        crop = Image.fromarray(photo[y0:y0 + ch, x0:x0 + cw])
        return np.asarray(crop.resize((w, h), Image.BILINEAR), dtype=np.float32)
    raise ValueError(f"unknown background {kind!r}: one of {BACKGROUNDS}")


@cache
def real_photo(name: str) -> np.ndarray:
    """One of the photos bundled in scikit-image's wheel as RGB uint8 (never a download)."""
    import skimage.data

    a = np.asarray(getattr(skimage.data, name)())
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


def _colour(under: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A text colour that stands out from the mean of what lies under the word (as signs are made)."""
    luma = float(under.reshape(-1, 3).mean(axis=0) @ [0.299, 0.587, 0.114])
    hue = rng.uniform(0, 255, 3)
    if luma > 128:
        return hue * rng.uniform(0.0, 0.3)  # dark ink on a light ground
    return 255 - (255 - hue) * rng.uniform(0.0, 0.3)  # light ink on a dark ground


def _case(word: str, rng: np.random.Generator) -> str:
    return (word, word.capitalize(), word.upper())[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]


def _free(box: np.ndarray, taken: list[np.ndarray], margin: float) -> bool:
    lo, hi = box.min(axis=0) - margin, box.max(axis=0) + margin
    return all(hi[0] < t.min(axis=0)[0] or lo[0] > t.max(axis=0)[0] or hi[1] < t.min(axis=0)[1]
               or lo[1] > t.max(axis=0)[1] for t in taken)


def place_word(img: np.ndarray, text: str, height: float, rng: np.random.Generator,
               taken: list[np.ndarray]) -> Word | None:
    """Draw one word onto ``img`` (in place) where no other word lies; None when it fits nowhere."""
    font = FONTS[int(rng.integers(len(FONTS)))]
    angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
    ink = ink_of_height(text, font, height)
    alpha, corners = _turned(ink, angle)
    th, tw = alpha.shape
    h, w = img.shape[:2]
    if tw + 8 > w or th + 8 > h:
        return None
    for _ in range(30):
        x0, y0 = int(rng.integers(4, w - tw - 3)), int(rng.integers(4, h - th - 3))
        box = corners + [x0, y0]
        if _free(box, taken, margin=max(8.0, height / 2)):
            break
    else:
        return None
    region = img[y0:y0 + th, x0:x0 + tw]
    colour = _colour(region[alpha > 0.5] if (alpha > 0.5).any() else region, rng)
    region += alpha[..., None] * (colour - region)
    taken.append(box)
    return Word(text=text, height=float(ink.shape[0]), angle=round(angle, 2), font=font,
                box=np.round(box, 1).tolist())


def make_photo(rng: np.random.Generator) -> tuple[np.ndarray, list[Word], str]:
    """One photo: its pixels (uint8), the words on it, its background kind."""
    size = CANVASES[int(rng.choice(len(CANVASES), p=CANVAS_P))]
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = background(kind, size, rng)
    words: list[Word] = []
    if rng.random() >= NO_TEXT_SHARE:
        taken: list[np.ndarray] = []
        for text in rng.choice(WORDS, size=int(rng.integers(1, 5)), replace=False):
            low, high = BUCKETS[int(rng.integers(len(BUCKETS)))]
            word = place_word(img, _case(str(text), rng), rng.uniform(low, high), rng, taken)
            if word is not None:
                words.append(word)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), words, kind


def generate(folder: Path, n: int, seed: int) -> Path:
    """``n`` photos as JPEG (quality 60-95) in ``folder`` and their ``truth.jsonl``; the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels, words, kind = make_photo(rng)
        quality = int(rng.integers(60, 96))
        name = f"words_{i:05d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=quality)
        rows.append({"file": name, "background": kind, "quality": quality, "size": list(pixels.shape[1::-1]),
                     "words": [asdict(w) for w in words]})
    (folder / "truth.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return folder


def size_group(row: dict) -> str:
    """A photo's size as the tables group it: its longest side."""
    return f"long side {max(row['size']):>4} px"


def read_truth(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "truth.jsonl").read_text().splitlines() if line]
