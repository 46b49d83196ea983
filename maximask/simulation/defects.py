"""Static detector defects, paper §2.1.4 and §2.1.11: hot and dead columns and lines (HCL,
DCL), dead clusters (DCL), hot and dead pixels (HP, DP) and overscan strips (OV).

Static defects set a pixel's final value whatever light fell on it, so `inject` applies
them last (§2.3.1) and each recipe here *replaces* pixel values:

- columns/lines: 1 to 4 of them, each a column or a line (equiprobable), length uniform in
  [30, full height or width], thickness uniform in [1, 3];
- clusters (DCL): 1 to 4 (our choice; the paper gives no count), each a rectangle of sides
  1-20 or a random convex 5- or 6-gon in a 20x20 box;
- points (HP, DP): a fraction of the pixels uniform in [0.0002, 0.0005], uniformly placed;
- hot values: base nu uniform in [15, 100] sigma_U, values N(nu, (0.02 nu)^2) *above the
  local background* (the paper's images are not sky-subtracted either way: we add the
  background so that a hot pixel is hot on any sky level);
- dead values: one of three equiprobable recipes: exactly 0; N(0, (0.02 sigma_U)^2); or
  N(nu, (0.02 nu)^2) with nu uniform in [0.1, 0.7] m_U (m_U = median sky level);
- overscan (OV): a strip on 1 or 2 sides (our choice), uniformly 10 to max(10, min(50,
  side / 8)) pixels wide, valued like dead pixels (§2.1.11). The paper gives no width; the
  published network ignores strips under 10 px and flags 12-40 px ones with p > 0.98 (on
  a 400x400 field normalised by its clean background), so its training strips were wide.
  Strips over ~20 px also corrupt the 200 px background meshes of the *contaminated*
  image, and MaxiMask then misses them (benchmarks/simulation_realism.py --background).

A hot or dead value is drawn once per column, line, cluster or strip (nu and recipe), and
once per image for the isolated pixels.
"""
import numpy as np

from .raster import convex_polygon


def hot_values(scene, rng, level):
    """Hot pixel values over a background `level` (array of the pixels' levels), ADU."""
    nu = rng.uniform(15.0, 100.0) * scene.sigma
    return level + rng.normal(nu, 0.02 * nu, np.shape(level))


def dead_values(scene, rng, n):
    """`n` dead pixel values by one of the paper's three equiprobable recipes, ADU."""
    recipe = rng.integers(3)
    if recipe == 0:
        return np.zeros(n)
    if recipe == 1:
        return rng.normal(0.0, 0.02 * scene.sigma, n)
    nu = rng.uniform(0.1, 0.7) * scene.sky
    return rng.normal(nu, 0.02 * abs(nu), n)


def _columns_and_lines(shape, rng):
    """Masks of 1 to 4 random columns or lines (one bool mask each)."""
    h, w = shape
    masks = []
    for _ in range(int(rng.integers(1, 5))):
        vertical = rng.random() < 0.5
        along, across = (h, w) if vertical else (w, h)
        length = int(rng.integers(min(30, along), along + 1))
        thickness = min(int(rng.integers(1, 4)), across)
        start = int(rng.integers(0, along - length + 1))
        offset = int(rng.integers(0, across - thickness + 1))
        mask = np.zeros(shape, dtype=bool)
        if vertical:
            mask[start:start + length, offset:offset + thickness] = True
        else:
            mask[offset:offset + thickness, start:start + length] = True
        masks.append(mask)
    return masks


def _clusters(shape, rng):
    """Masks of 1 to 4 clusters: rectangles up to 20x20 or convex 5/6-gons in 20x20 boxes."""
    h, w = shape
    masks = []
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.5:
            shape_mask = np.ones(rng.integers(1, 21, 2), dtype=bool)
        else:
            shape_mask = convex_polygon(rng)
        sh, sw = min(shape_mask.shape[0], h), min(shape_mask.shape[1], w)
        y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        mask = np.zeros(shape, dtype=bool)
        mask[y0:y0 + sh, x0:x0 + sw] = shape_mask[:sh, :sw]
        masks.append(mask)
    return masks


def _points(shape, rng):
    """A mask of isolated pixels, a fraction in [0.0002, 0.0005] of the image."""
    n = max(1, int(round(rng.uniform(0.0002, 0.0005) * shape[0] * shape[1])))
    flat = rng.choice(shape[0] * shape[1], n, replace=False)
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[flat] = True
    return mask.reshape(shape)


def inject_hot_columns(image, scene, rng):
    """HCL: hot columns and lines (values replace pixels in place); returns the truth."""
    truth = np.zeros(image.shape, dtype=bool)
    for mask in _columns_and_lines(image.shape, rng):
        image[mask] = hot_values(scene, rng, scene.level[mask])
        truth |= mask
    return truth


def inject_dead_columns(image, scene, rng):
    """DCL: dead columns, lines and clusters (values replace pixels); returns the truth."""
    truth = np.zeros(image.shape, dtype=bool)
    for mask in _columns_and_lines(image.shape, rng) + _clusters(image.shape, rng):
        image[mask] = dead_values(scene, rng, int(mask.sum()))
        truth |= mask
    return truth


def inject_hot_pixels(image, scene, rng):
    """HP: isolated hot pixels (values replace pixels); returns the truth."""
    mask = _points(image.shape, rng)
    image[mask] = hot_values(scene, rng, scene.level[mask])
    return mask


def inject_dead_pixels(image, scene, rng):
    """DP: isolated dead pixels (values replace pixels); returns the truth."""
    mask = _points(image.shape, rng)
    image[mask] = dead_values(scene, rng, int(mask.sum()))
    return mask


def inject_overscan(image, scene, rng):
    """OV: strips at 1 or 2 image sides valued like dead pixels; returns the truth."""
    h, w = image.shape
    truth = np.zeros(image.shape, dtype=bool)
    for side in rng.choice(4, int(rng.integers(1, 3)), replace=False):
        across = h if side < 2 else w
        width = min(int(rng.integers(10, max(10, min(50, across // 8)) + 1)), across)
        mask = np.zeros(image.shape, dtype=bool)
        if side == 0:
            mask[:width] = True
        elif side == 1:
            mask[-width:] = True
        elif side == 2:
            mask[:, :width] = True
        else:
            mask[:, -width:] = True
        image[mask] = dead_values(scene, rng, int(mask.sum()))
        truth |= mask
    return truth
