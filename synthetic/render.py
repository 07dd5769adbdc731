"""Drawing objects whose looks follow the WordNet hierarchy.

Every synset owns a random trait vector, seeded by its WordNet offset. A class looks like the
normalised sum of the vectors along its chain of first parents (the class's own vector counts double), so
classes that share most of their ancestors look alike, and a coarse label (a shared ancestor)
leaves its trace on every image under it. A vector is read as: object colour and its secondary
colour, shape family, texture kind, texture frequency and angle, size, aspect ratio, and a
preferred background colour.
"""

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SHAPES = ("ellipse", "box", "triangle", "star", "cross", "ring")
TEXTURES = ("plain", "stripes", "dots", "checker")
TRAIT_DIM = 25
LEAF_WEIGHT = 2.0


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


@dataclass(frozen=True)
class Look:
    color: np.ndarray
    secondary: np.ndarray
    background: np.ndarray
    shape: int
    texture: int
    frequency: float  # texture cycles across the object
    angle: float  # texture orientation, radians
    size: float  # object half-extent as a fraction of the canvas half-size
    aspect: float  # width / height

    @classmethod
    def from_vector(cls, v: np.ndarray) -> "Look":
        hue = np.arctan2(v[1], v[0]) / (2 * np.pi)
        value = 0.45 + 0.5 * _sigmoid(v[3])
        return cls(
            color=_hsv(hue, 0.4 + 0.55 * _sigmoid(v[2]), value),
            secondary=_hsv(hue + 0.5 * _sigmoid(v[4]), 0.6, value * (0.25 + 0.45 * _sigmoid(v[5]))),
            background=_hsv(
                np.arctan2(v[7], v[6]) / (2 * np.pi),
                0.1 + 0.4 * _sigmoid(v[8]),
                0.25 + 0.6 * _sigmoid(v[9]),
            ),
            shape=int(np.argmax(v[10:16])),
            texture=int(np.argmax(v[16:20])),
            frequency=1.5 + 4.0 * _sigmoid(v[20]),
            angle=float(np.arctan2(v[22], v[21])),
            size=0.45 + 0.35 * _sigmoid(v[23]),
            aspect=float(np.exp(0.35 * np.tanh(v[24]))),
        )


def synset_vector(offset: int) -> np.ndarray:
    return np.random.default_rng(offset).standard_normal(TRAIT_DIM)


def look_of_path(offsets: Sequence[int]) -> Look:
    """The look of the last synset of a hypernym path (root first)."""
    weights = np.ones(len(offsets))
    weights[-1] = LEAF_WEIGHT
    total = sum(w * synset_vector(o) for w, o in zip(weights, offsets))
    return Look.from_vector(total / np.sqrt(np.sum(weights**2)))


def random_look(rng: np.random.Generator) -> Look:
    return Look.from_vector(rng.standard_normal(TRAIT_DIM))


def background(
    height: int, width: int, color: np.ndarray, rng: np.random.Generator, horizon_color=None
) -> np.ndarray:
    """A colour with a random gradient and blotches; below a random horizon when given a second
    colour."""
    y, x = _grid(0, height, 0, width)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * x / width + np.sin(direction) * y / height)[..., None]
    canvas = color * (0.85 + 0.3 * ramp)
    if horizon_color is not None:
        horizon = rng.uniform(0.35, 0.65) * height
        canvas = np.where((y > horizon)[..., None], horizon_color * (0.8 + 0.3 * ramp), canvas)
    blotches = rng.normal(0, 0.04, (4, 4, 3)).astype(np.float32)
    blotches = np.repeat(np.repeat(blotches, -(-height // 4), 0), -(-width // 4), 1)
    return canvas + blotches[:height, :width]


def _shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    radius = np.hypot(u, v)
    name = SHAPES[shape]
    if name == "ellipse":
        return radius < 1
    if name == "box":
        return np.maximum(np.abs(u), np.abs(v)) < 0.85
    if name == "triangle":
        return (v < 0.85) & (np.abs(u) < (v + 0.95) * 0.55)
    if name == "star":
        return radius < 0.55 + 0.4 * np.cos(5 * np.arctan2(v, u))
    if name == "cross":
        return ((np.abs(u) < 0.33) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.33) & (np.abs(u) < 0.95))
    return (radius > 0.5) & (radius < 0.95)  # ring


def _texture(look: Look, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    name = TEXTURES[look.texture]
    phase = np.pi * look.frequency
    along = u * np.cos(look.angle) + v * np.sin(look.angle)
    across = -u * np.sin(look.angle) + v * np.cos(look.angle)
    if name == "plain":
        return np.ones_like(u)
    if name == "stripes":
        return (np.sin(phase * along) > 0).astype(np.float32)
    if name == "dots":
        return ((np.sin(phase * along) * np.sin(phase * across)) < 0.4).astype(np.float32)
    return (np.sin(phase * along) * np.sin(phase * across) > 0).astype(np.float32)  # checker


def draw_object(
    canvas: np.ndarray,
    look: Look,
    center: tuple[float, float],
    half_size: tuple[float, float],
    rotation: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paints ``look`` into ``canvas`` (H, W, 3 floats) in place; returns the painted mask."""
    height, width, _ = canvas.shape
    cx, cy = center
    hw, hh = half_size
    reach = np.hypot(hw, hh)
    x0, x1 = max(0, int(cx - reach)), min(width, int(np.ceil(cx + reach)) + 1)
    y0, y1 = max(0, int(cy - reach)), min(height, int(np.ceil(cy + reach)) + 1)
    mask = np.zeros((height, width), dtype=bool)
    if x0 >= x1 or y0 >= y1:
        return mask
    y, x = _grid(y0, y1, x0, x1)
    dx, dy = x + 0.5 - cx, y + 0.5 - cy
    cos, sin = np.cos(rotation), np.sin(rotation)
    u = (cos * dx + sin * dy) / hw
    v = (-sin * dx + cos * dy) / hh
    inside = _shape_mask(look.shape, u, v)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    # Texture is 0 or 1: each painted pixel is the tinted colour or the tinted secondary colour
    texture = _texture(look, u[inside], v[inside])[:, None]
    canvas[y0:y1, x0:x1][inside] = np.where(texture > 0, look.color * tint, look.secondary * tint)
    mask[y0:y1, x0:x1] = inside
    return mask


def _grid(y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows (a column) and columns (a row) of a window, which broadcast to its grid."""
    return np.arange(y0, y1, dtype=np.float32)[:, None], np.arange(x0, x1, dtype=np.float32)[None, :]


def to_uint8(canvas: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    noisy = canvas + rng.normal(0, noise, canvas.shape).astype(np.float32)
    return (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)


def object_image(look: Look, size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """An ImageNet-style photo: one object of ``look``, centred with jitter, sometimes with a
    small distractor. Returns the image and the object's box (x0, y0, x1, y1, pixels)."""
    backdrop = look.background * rng.uniform(0.75, 1.25, 3).astype(np.float32)
    canvas = background(size, size, np.clip(backdrop, 0, 1), rng)
    if rng.random() < 0.3:
        draw_object(
            canvas,
            random_look(rng),
            tuple(rng.uniform(0, size, 2)),
            (size * 0.12, size * 0.12),
            rng.uniform(0, np.pi),
            rng,
        )
    half = look.size * size / 2 * rng.uniform(0.8, 1.2)
    aspect = look.aspect * rng.uniform(0.9, 1.1)
    center = size / 2 + rng.normal(0, 0.1 * size, 2)
    mask = draw_object(
        canvas,
        look,
        (center[0], center[1]),
        (half * np.sqrt(aspect), half / np.sqrt(aspect)),
        rng.normal(0, 0.3),
        rng,
    )
    return to_uint8(canvas, rng), mask_box(mask)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1), inclusive pixel indices, or None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
