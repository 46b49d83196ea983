"""The inpainting kernel (maximask.kernels.inpaint) against a plain NumPy version."""
import numpy as np
import pytest

from maximask import kernels


def np_inpaint(image, mask, method, max_radius, min_valid):
    """Pixel-by-pixel NumPy version of the kernel's documented rule (float64 sums)."""
    image = np.asarray(image, np.float32)
    h, w = image.shape
    valid = (mask == 0) & np.isfinite(image)
    out = image.copy()
    left = 0
    for y, x in zip(*np.nonzero(mask)):
        for r in range(1, max_radius + 1):
            ya, yb, xa, xb = max(y - r, 0), min(y + r, h - 1), max(x - r, 0), min(x + r, w - 1)
            box = valid[ya:yb + 1, xa:xb + 1]
            if box.sum() >= min_valid:
                break
        if not box.any():
            left += 1
            continue
        yy, xx = np.nonzero(box)
        v = image[ya:yb + 1, xa:xb + 1][box].astype(np.float64)
        dy, dx = (yy + ya - y).astype(np.float64), (xx + xa - x).astype(np.float64)
        d2 = dx * dx + dy * dy
        if method == "median":
            out[y, x] = np.float32(np.median(v))
            continue
        if method in ("clipped", "clipped_plane"):
            med = np.median(v)
            spread = 3 * 1.4826 * np.median(np.abs(v - med).astype(np.float32).astype(np.float64))
            if spread > 0:
                keep = (v >= med - spread) & (v <= med + spread)
                v, d2, dx, dy = v[keep], d2[keep], dx[keep], dy[keep]
        wt = 1 / d2 if method == "idw" else np.exp(-d2 / (2 * (r / 2) ** 2))  # gauss, clipped
        a = np.stack([np.ones_like(dx), dx, dy], 1)
        if method in ("plane", "clipped_plane") and np.linalg.matrix_rank(a) == 3:
            coef = np.linalg.solve(a.T @ (a * wt[:, None]), a.T @ (wt * v))
            out[y, x] = np.float32(coef[0])
        else:
            out[y, x] = np.float32(np.sum(wt * v) / np.sum(wt))
    return out, left


def small_case(seed, shape=(40, 50), frac=0.08):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = (100 + 0.3 * xx - 0.2 * yy + 400 * np.exp(-((yy - 17) ** 2 + (xx - 23) ** 2) / 8)
             + rng.normal(0, 3, shape)).astype(np.float32)
    mask = rng.random(shape) < frac
    mask[5:9, 30:33] = True                                   # a blob: radius grows
    mask[:, 45] = True                                        # a column
    return image, mask


@pytest.mark.parametrize("method", kernels.INPAINT_METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_inpaint_matches_numpy(method, seed):
    image, mask = small_case(seed)
    out, left = kernels.inpaint(image, mask, method, max_radius=4, min_valid=6)
    ref, ref_left = np_inpaint(image, mask, method, 4, 6)
    assert left == ref_left == 0
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-4)
    assert np.array_equal(out[~mask].view(np.uint32), image[~mask].view(np.uint32))
    assert not np.array_equal(out[mask], image[mask])


def test_inpaint_leaves_isolated_pixels_and_counts_them():
    image = np.arange(30 * 30, dtype=np.float32).reshape(30, 30)
    mask = np.zeros(image.shape, bool)
    mask[5:20, 5:20] = True                                   # centre 15 px from any valid one
    out, left = kernels.inpaint(image, mask, "gauss", max_radius=3, min_valid=4)
    ref, ref_left = np_inpaint(image, mask, "gauss", 3, 4)
    assert left == ref_left == 9 * 9                          # the 9x9 core beyond radius 3
    assert np.array_equal(out[8:17, 8:17], image[8:17, 8:17])
    np.testing.assert_allclose(out, ref, rtol=2e-6)


def test_inpaint_ignores_nan_neighbours_and_fills_nan_pixels():
    image = np.full((9, 9), 7.0, np.float32)
    image[4, 3] = np.nan                                      # an unmasked NaN: not a neighbour
    image[4, 4] = np.nan                                      # a masked NaN: replaced
    mask = np.zeros(image.shape, bool)
    mask[4, 4] = True
    for method in kernels.INPAINT_METHODS:
        out, left = kernels.inpaint(image, mask, method)
        assert left == 0 and out[4, 4] == 7.0 and np.isnan(out[4, 3])


def test_inpaint_clipped_ignores_an_outlier_neighbour():
    image = np.full((9, 9), 10.0, np.float32)
    image += np.random.default_rng(2).normal(0, 0.1, image.shape).astype(np.float32)
    image[4, 5] = 5000.0                                      # an unflagged cosmic-ray halo
    mask = np.zeros(image.shape, bool)
    mask[4, 4] = True
    clipped, _ = kernels.inpaint(image, mask, "clipped")
    gauss, _ = kernels.inpaint(image, mask, "gauss")
    assert abs(clipped[4, 4] - 10) < 0.5 and gauss[4, 4] > 100


def test_inpaint_plane_is_exact_on_a_plane():
    yy, xx = np.mgrid[:20, :20]
    image = (3 + 2 * xx - 5 * yy).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[0, :] = mask[10, 3:9] = True                        # an edge row: one-sided boxes
    out, _ = kernels.inpaint(image, mask, "plane")
    np.testing.assert_allclose(out, image, atol=1e-3)


def test_inpaint_rejects_bad_arguments():
    image = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="mask"):
        kernels.inpaint(image, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="method"):
        kernels.inpaint(image, np.zeros((4, 4), bool), method="spline")
    with pytest.raises(ValueError, match="share memory"):
        kernels.inpaint(image, np.zeros((4, 4), bool), out=image)
