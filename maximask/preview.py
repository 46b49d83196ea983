"""PNG quick-looks of masked images: the image in a zscale stretch, flagged classes in colour.

    png = render([("x.fits[1]", image, flags)], classes=[0, 3, 9])   # a PIL image
    save(png, legend_lines, "x.preview.png")

Each panel is one 2-D plane (an image HDU, or a plane of a cube), panels in a grid. Large
images are shrunk by an integer factor: the image by the mean of each box, the flags by
their OR over the box, so a single flagged pixel stays visible. A pixel (box) flagged by
one class takes that class's colour, by several classes black, as in the paper's Fig. 8
(Paillassa et al. 2020). The legend gives each class's colour and pixel count (full
resolution); the same lines go into the PNG's "Legend" text chunk.

Needs Pillow (the ``plot`` extra): :func:`require_pillow` says so in one line.
"""
import math
import warnings

import numpy as np

from .classes import CLASSES

#: Fig. 8 colours of Paillassa et al. (2020), RGB; "dark blue: BCL" and "blue: BP" are the
#: dead columns (DCL) and dead pixels (DP).
CLASS_COLOURS = {
    "CR": (230, 0, 0),            # red
    "HCL": (0, 100, 0),           # dark green
    "DCL": (0, 0, 139),           # dark blue
    "HP": (0, 200, 0),            # green
    "DP": (30, 110, 255),         # blue
    "P": (255, 230, 0),           # yellow
    "TRL": (255, 140, 0),         # orange
    "FR": (128, 128, 128),        # gray
    "NEB": (200, 200, 200),       # light gray
    "SAT": (128, 0, 128),         # purple
    "SP": (200, 140, 230),        # light purple
    "OV": (139, 69, 19),          # brown
    "BBG": (255, 105, 180),       # pink
    "BG": (64, 64, 64),           # dark gray
}
SEVERAL_CLASSES = (0, 0, 0)       # black
MAX_SIDE = 2048                   # [pixel] largest side of the panel grid (PREVIEW_SIZE)
GAP = 4                           # [pixel] between panels
LINE = 14                         # [pixel] height of a text line


def require_pillow():
    """Import Pillow, or raise ImportError with the one line a user needs."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise ImportError("PREVIEW needs Pillow: pip install 'maximask[plot]'") from None


def shrink_factor(shapes, max_side=MAX_SIDE):
    """The smallest integer factor that fits the panels (h, w) in a grid of max_side."""
    ncol = math.ceil(math.sqrt(len(shapes)))
    nrow = math.ceil(len(shapes) / ncol)
    h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    return max(1, math.ceil(max(nrow * h, ncol * w) / max_side))


def _blocks(a, f):
    """(h, w) -> (ceil(h/f), ceil(w/f), f*f) boxes, padded with NaN (floats) or 0."""
    h, w = a.shape
    hh, ww = -(-h // f) * f, -(-w // f) * f
    pad = np.full((hh, ww), np.nan if a.dtype.kind == "f" else 0, a.dtype)
    pad[:h, :w] = a
    return pad.reshape(hh // f, f, ww // f, f).swapaxes(1, 2).reshape(hh // f, ww // f, f * f)


def shrink(image, flags, f):
    """Image (h, w) by the mean of each f x f box (NaN ignored), flags by their OR."""
    if f == 1:
        return np.asarray(image, np.float32), np.asarray(flags)
    img = _blocks(np.asarray(image, np.float32), f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN boxes stay NaN
        mean = np.nanmean(img, axis=2)
    return mean, np.bitwise_or.reduce(_blocks(np.asarray(flags), f), axis=2)


def stretch(image):
    """Grey levels (uint8) of an image in a zscale stretch; NaN pixels are black."""
    from astropy.visualization import ZScaleInterval

    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, np.uint8)
    lo, hi = ZScaleInterval().get_limits(image[finite])
    scaled = (np.nan_to_num(image, nan=lo) - lo) / ((hi - lo) or 1.0)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)


def colourise(grey, flags, classes):
    """RGB (h, w, 3) uint8: grey image, pixels flagged by one of `classes` (indices) in its
    colour, by several in black."""
    rgb = np.repeat(grey[..., None], 3, axis=2)
    bits = np.zeros_like(flags)
    for k in classes:
        bits |= flags & np.asarray(1 << k, flags.dtype)
    hit = bits != 0
    single = hit & ((bits & (bits - 1)) == 0)
    for k in classes:
        rgb[single & (bits == (1 << k))] = CLASS_COLOURS[CLASSES[k].abbr]
    rgb[hit & ~single] = SEVERAL_CLASSES
    return rgb


def legend_lines(counts):
    """The legend: one line per class, ``"CR cosmic rays: 123 px"``; counts {index: n}."""
    return [f"{CLASSES[k].abbr} {CLASSES[k].name}: {n} px" for k, n in counts.items()]


HEADER_LINES = 2


def layout(shapes, max_side=MAX_SIDE):
    """Where panels of these (h, w) shapes go: ``(f, ncol, origins)``, f the shrink factor
    and origins the (x, y) of each panel's top-left image pixel in the rendered image;
    full-resolution pixel (r, c) of panel n is drawn at ``origins[n] + (c // f, r // f)``."""
    f = shrink_factor(shapes, max_side)
    ncol = math.ceil(math.sqrt(len(shapes)))
    ph = max(-(-h // f) for h, _ in shapes)
    pw = max(-(-w // f) for _, w in shapes)
    top = LINE * HEADER_LINES + GAP
    origins = [((n % ncol) * (pw + GAP), top + (n // ncol) * (ph + LINE + GAP) + LINE)
               for n in range(len(shapes))]
    return f, ncol, origins


def render(panels, classes, title="", max_side=MAX_SIDE):
    """The preview of a file as a PIL RGB image.

    panels: (label, image (h, w) float, flags (h, w) integer, bit k = class k) for each
    plane; classes: the class indices shown, in legend order; max_side: the largest side of
    the grid of panels, in pixels. Returns (image, legend lines).
    """
    from PIL import Image, ImageDraw, ImageFont

    shapes = [p[1].shape for p in panels]
    f, ncol, origins = layout(shapes, max_side)
    ph, pw = max(-(-h // f) for h, _ in shapes), max(-(-w // f) for _, w in shapes)
    nrow = math.ceil(len(panels) / ncol)
    counts = {k: int(sum(np.count_nonzero(p[2] & (1 << k)) for p in panels)) for k in classes}
    lines = legend_lines(counts)
    header = [title, f"zscale; {f}x{f} pixels per point, flags: any in the box"]
    width = max(ncol * pw + (ncol - 1) * GAP, 280)
    legend_top = origins[0][1] - LINE + nrow * (ph + LINE + GAP)
    canvas = Image.new("RGB", (width, legend_top + LINE * len(lines) + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, text in enumerate(header[:HEADER_LINES]):
        draw.text((2, i * LINE), text, fill=(0, 0, 0), font=font)
    for (label, image, flags), (x0, y0) in zip(panels, origins):
        small, small_flags = shrink(image, flags, f)
        draw.text((x0 + 2, y0 - LINE), label, fill=(0, 0, 0), font=font)
        canvas.paste(Image.fromarray(colourise(stretch(small), small_flags, classes), "RGB"),
                     (x0, y0))
    for i, (k, text) in enumerate(zip(counts, lines)):
        y = legend_top + i * LINE
        draw.rectangle((2, y + 2, 12, y + 12), fill=CLASS_COLOURS[CLASSES[k].abbr],
                       outline=(0, 0, 0))
        draw.text((18, y), text, fill=(0, 0, 0), font=font)
    return canvas, lines


def save(canvas, lines, path, software="", protect=frozenset()):
    """Write the PNG at `path` (complete or absent, never over a file of `protect`: see
    outputs.write_atomically) with its legend in a text chunk."""
    from PIL.PngImagePlugin import PngInfo

    from .outputs import write_atomically

    info = PngInfo()
    info.add_text("Legend", "\n".join(lines))
    if software:
        info.add_text("Software", software)
    write_atomically(path, lambda tmp: canvas.save(tmp, format="PNG", pnginfo=info),
                     protect=protect)
    return path
