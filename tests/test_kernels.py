"""Tests of the C++ kernels against plain NumPy versions and the reference's outputs.

The background fixtures (tests/data/background_*.npz) hold the reference MaxiMask 1.4.1
products of seeded fields regenerated here (tools/make_background_fixtures.py).
"""
import ctypes
import ctypes.util
import glob
import importlib.util
import math
import os

import numpy as np
import pytest

from maximask import kernels
from maximask.classes import DEFAULT_PRIORS, DEFAULT_THRESHOLDS, NCLASSES

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = sorted(glob.glob(os.path.join(HERE, "data", "background_*.npz")))


def _fixture_tool():
    path = os.path.join(HERE, "..", "tools", "make_background_fixtures.py")
    spec = importlib.util.spec_from_file_location("make_background_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------ NumPy versions (reference)


def np_sanitize(im):
    im = np.array(im, dtype=np.float32)
    im[np.isnan(im)] = 0
    im[im > 80000] = 80000
    im[im < -500] = -500
    return im


_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.asinhf.restype = ctypes.c_float
_LIBM.asinhf.argtypes = [ctypes.c_float]
_ASINHF = np.frompyfunc(_LIBM.asinhf, 1, 1)


def libm_asinhf(x):
    """glibc's asinhf itself, element by element (numpy >= 2.4 has its own float32 arcsinh)."""
    x = np.asarray(x, np.float32)
    return _ASINHF(x.ravel()).astype(np.float32).reshape(x.shape)


def np_mesh_stats(mesh, k=3):
    """The reference's per-mesh loop (utils.background_est), on a float32 mesh."""
    if np.all(mesh == 0):
        return np.float32(0), np.float32(1)
    cur_mask = np.ones_like(mesh)
    idx = np.where(cur_mask)
    cur_med = np.median(mesh[idx])
    init_std = np.std(mesh[idx])
    cur_std = init_std
    while True:
        to_keep = np.logical_and(cur_mask * (mesh >= cur_med - k * cur_std),
                                 cur_mask * (mesh <= cur_med + k * cur_std))
        if np.all(to_keep == cur_mask):
            break
        cur_mask *= to_keep
        idx = np.where(cur_mask)
        cur_med = np.median(mesh[idx])
        cur_std = np.std(mesh[idx])
    if 0.8 * init_std < cur_std < 1.2 * init_std:
        return np.float32(np.mean(mesh[idx])), np.float32(cur_std)
    return np.float32(2.5 * cur_med - 1.5 * np.mean(mesh[idx])), np.float32(cur_std)


def np_mesh_statistics(image, mesh_size):
    im = np_sanitize(image)
    h, w = im.shape
    mh, mw = min(mesh_size, h), min(mesh_size, w)
    ny, nx = h // mh, w // mw
    oy, ox = (h % mh) // 2, (w % mw) // 2
    lv = np.zeros((ny, nx), np.float32)
    sg = np.zeros((ny, nx), np.float32)
    for i in range(ny):
        for j in range(nx):
            mesh = im[oy + i * mh: oy + (i + 1) * mh, ox + j * mw: ox + (j + 1) * mw]
            lv[i, j], sg[i, j] = np_mesh_stats(mesh)
    return lv, sg


def np_clean_grid(grid):
    """The reference's clean_grid (float64, in place)."""
    cur_mask = np.ones_like(grid, dtype=np.int32)
    k = 0
    while True:
        idx = np.where(cur_mask)
        med, std = np.median(grid[idx]), np.std(grid[idx])
        out = np.where(cur_mask * ((grid > med + 3 * std) | (grid < med - 3 * std)))
        if len(out[0]) == 0 or k == 5:
            break
        cur_mask[out] = 0
        k += 1
    bad = np.logical_not(cur_mask)
    if bad.any():
        h, w = grid.shape
        grid[bad] = np.nan
        while np.isnan(grid).any():
            for y, x in zip(*np.where(bad)):
                vals = [grid[yy, xx] for yy in range(y - 1, y + 2) for xx in range(x - 1, x + 2)
                        if 0 <= yy < h and 0 <= xx < w and not math.isnan(grid[yy, xx])]
                if vals:
                    grid[y, x] = np.sum(np.array(vals)) / len(vals)
    return grid


def np_nodes(grid):
    g = np.pad(np_clean_grid(np.array(grid, dtype=np.float64)), 1, "edge")
    z = np.pad(g, 1, "constant")
    win = np.lib.stride_tricks.sliding_window_view(z, (3, 3)).reshape(g.shape + (9,))
    return np.sort(win, axis=-1)[..., 4]


def np_ref_tiles(h, w, T):
    """The reference's get_block_coords, as (y, x), with its duplicates and order."""
    s = T // 2
    c = [(y, x) for y in range(0, h - T + 1, s) for x in range(0, w - T + 1, s)]
    if h % T:
        c += [(h - T, x) for x in range(0, w - T + 1, s)]
    if w % T:
        c += [(y, w - T) for y in range(0, h - T + 1, s)]
    if h % T and w % T:
        c.append((h - T, w - T))
    return c


def np_ref_stitch(res, coords, h, w, T):
    """The reference's process_batch fill loop, res (N, T, T) -> (h, w)."""
    q = T // 4
    out = np.full((h, w), np.nan, np.float32)
    for b, (y, x) in enumerate(coords):
        out[q + y: y + T - q, q + x: x + T - q] = res[b, q: T - q, q: T - q]
        if x == 0:
            out[q + y: y + T - q, x: x + q] = res[b, q: T - q, :q]
        if y == 0:
            out[y: y + q, q + x: x + T - q] = res[b, :q, q: T - q]
        if x == w - T:
            out[q + y: y + T - q, x + T - q: x + T] = res[b, q: T - q, T - q:]
        if y == h - T:
            out[y + T - q: y + T, q + x: x + T - q] = res[b, T - q:, q: T - q]
        if x == 0 and y == 0:
            out[y: y + q, x: x + q] = res[b, :q, :q]
        if x == 0 and y == h - T:
            out[y + T - q: y + T, x: x + q] = res[b, T - q:, :q]
        if x == w - T and y == 0:
            out[y: y + q, x + T - q: x + T] = res[b, :q, T - q:]
        if x == w - T and y == h - T:
            out[y + T - q: y + T, x + T - q: x + T] = res[b, T - q:, T - q:]
    return out


def random_sky(shape, seed, level=1000.0, noise=20.0, nan_frac=0.0, stars=0):
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    im = level + 0.1 * xx - 0.05 * yy + rng.normal(0, noise, shape)
    for _ in range(stars):
        y, x = rng.integers(0, h), rng.integers(0, w)
        im[max(y - 2, 0): y + 3, max(x - 2, 0): x + 3] += rng.uniform(100, 1e5)
    if nan_frac:
        im[rng.random(shape) < nan_frac] = np.nan
    return im.astype(np.float32)


# ------------------------------------------------------------ background vs reference


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p) for p in FIXTURES])
def test_background_matches_reference(path):
    tool = _fixture_tool()
    d = np.load(path)
    im = tool.make_field(str(d["kind"]), int(d["seed"]), tuple(int(v) for v in d["shape"]))
    assert np.array_equal(tool.fingerprint(im), d["fingerprint"], equal_nan=True), \
        "regenerated field differs from the fixture's"
    mesh = int(d["mesh_size"])
    lv, sg = kernels.mesh_statistics(im, mesh)
    np.testing.assert_array_equal(lv, d["mesh_level"])
    np.testing.assert_array_equal(sg, d["mesh_sigma"])
    nl, ns = kernels.background_nodes(im, mesh)
    np.testing.assert_allclose(nl, d["node_level"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ns, d["node_sigma"], rtol=1e-12, atol=1e-9)
    level, sigma = kernels.estimate_background(im, mesh)
    assert level.dtype == sigma.dtype == np.float32 and level.shape == im.shape
    st = int(d["step"])
    for sl, key in ((np.s_[::st, ::st], "grid"), (np.s_[0], "top"), (np.s_[-1], "bottom"),
                    (np.s_[:, 0], "left"), (np.s_[:, -1], "right")):
        ref_l, ref_s = d["level_" + key], d["sigma_" + key]
        # the reference's sigma can reach 0 or below (spline between a constant band's
        # nodes, of sigma 0, and its neighbours): tolerances relative to |sigma|, floored
        scale = np.maximum(np.abs(ref_s), 1e-3)
        assert np.max(np.abs(level[sl] - ref_l) / scale) <= 1e-3, key
        assert np.max(np.abs(sigma[sl] - ref_s) / scale) <= 1e-3, key


def test_fixture_fields_exercise_the_hard_cases():
    """The fixtures cover what they claim: zero meshes, constant meshes, clipped pixels."""
    names = {os.path.basename(p) for p in FIXTURES}
    assert {"background_gradient.npz", "background_stars.npz", "background_zeros.npz",
            "background_flat.npz"} <= names
    z = np.load(os.path.join(HERE, "data", "background_zeros.npz"))
    assert np.any((z["mesh_level"] == 0) & (z["mesh_sigma"] == 1))
    f = np.load(os.path.join(HERE, "data", "background_flat.npz"))
    assert np.any(f["mesh_sigma"] == 0)
    for p in FIXTURES:
        shape = tuple(np.load(p)["shape"])
        assert shape[0] % 200 or shape[1] % 200 or "flat" in p


# ------------------------------------------------------------ background vs NumPy


@pytest.mark.parametrize("shape,mesh,seed", [
    ((97, 131), 16, 1), ((64, 64), 16, 2), ((50, 300), 40, 3), ((33, 7), 8, 4),
    ((20, 30), 64, 5), ((1, 200), 50, 6),
])
def test_mesh_statistics_equal_numpy(shape, mesh, seed):
    im = random_sky(shape, seed, nan_frac=0.01, stars=5)
    im[: shape[0] // 3, : shape[1] // 3] = 0.0  # some all-zero meshes
    if shape[0] > 10:
        im[5, :] = 1e6  # clipped to 80000
    lv, sg = kernels.mesh_statistics(im, mesh)
    rl, rs = np_mesh_statistics(im, mesh)
    np.testing.assert_array_equal(lv, rl)
    np.testing.assert_array_equal(sg, rs)


@pytest.mark.parametrize("seed", range(3))
def test_mesh_statistics_large_meshes_equal_numpy(seed):
    """Meshes of >= 4096 values (the sorted band about the median, its fallback to a full
    sort when the clipping moves the median out of it, the vectorised compaction)."""
    rng = np.random.default_rng(100 + seed)
    im = random_sky((300, 330), seed, noise=15.0, nan_frac=0.002, stars=60)
    im[:100, :110] += np.where(rng.random((100, 110)) < 0.35, 5000.0, 0.0)  # one-sided
    im[100:200, 110:220] = np.round(im[100:200, 110:220] / 8) * 8  # many ties
    im[200:, 220:] = rng.standard_cauchy((100, 110)) * 50 + 200  # heavy tails
    lv, sg = kernels.mesh_statistics(im, 100)
    rl, rs = np_mesh_statistics(im, 100)
    np.testing.assert_array_equal(lv, rl)
    np.testing.assert_array_equal(sg, rs)


@pytest.mark.parametrize("seed", range(4))
def test_background_nodes_equal_numpy(seed):
    im = random_sky((180, 230), seed, noise=5.0, stars=40)
    im[:40, :40] = 0.0
    im[100:, 200:] = 3000.0  # outlier meshes for clean_grid
    lv, sg = kernels.mesh_statistics(im, 20)
    nl, ns = kernels.background_nodes(im, 20)
    np.testing.assert_array_equal(nl, np_nodes(lv))
    np.testing.assert_array_equal(ns, np_nodes(sg))
    assert np.all(nl[[0, 0, -1, -1], [0, -1, 0, -1]] == 0)  # the medfilt corner quirk


@pytest.mark.parametrize("shape,mesh", [((800, 1000), 200), ((300, 900), 200),
                                        ((150, 170), 200), ((1, 500), 100),
                                        ((500, 1), 100), ((1, 1), 200), ((257, 1031), 64)])
def test_background_passes_through_nodes(shape, mesh):
    """The spline interpolates the nodes at the mesh centres, in every regime
    (cubic, parabola for one mesh per axis, meshes shrunk to small images)."""
    im = random_sky(shape, 7, stars=3)
    level, sigma = kernels.estimate_background(im, mesh)
    assert np.all(np.isfinite(level)) and np.all(np.isfinite(sigma))
    ny, nx, mh, mw, oy, ox = kernels.mesh_layout(*shape, mesh)
    assert (ny, nx) == (max(shape[0] // mesh, 1), max(shape[1] // mesh, 1))
    nl, ns = kernels.background_nodes(im, mesh)
    for i in range(ny):
        for j in range(nx):
            cy, cx = oy + i * mh + mh / 2, ox + j * mw + mw / 2
            if cy == int(cy) and cx == int(cx) and cy < shape[0] and cx < shape[1]:
                assert level[int(cy), int(cx)] == pytest.approx(nl[i + 1, j + 1], rel=1e-6, abs=1e-3)
                assert sigma[int(cy), int(cx)] == pytest.approx(ns[i + 1, j + 1], rel=1e-6)


def test_background_of_flat_sky_is_flat_inside():
    im = random_sky((1000, 1200), 8, level=500.0, noise=10.0) - np.float32(0)
    im = (500 + np.random.default_rng(0).normal(0, 10, im.shape)).astype(np.float32)
    level, sigma = kernels.estimate_background(im)
    inner = np.s_[150:-150, 150:-150]  # away from the corner quirk of the reference
    assert np.abs(level[inner] - 500).max() < 1.5
    assert np.abs(sigma[inner] / 10 - 1).max() < 0.05


def test_background_nan_counts_as_zero():
    im = random_sky((450, 620), 9, nan_frac=0.02)
    level, sigma = kernels.estimate_background(im)
    l0, s0 = kernels.estimate_background(np.nan_to_num(im, nan=0.0))
    np.testing.assert_array_equal(level, l0)
    np.testing.assert_array_equal(sigma, s0)
    assert np.all(np.isfinite(level)) and np.all(np.isfinite(sigma))


def test_background_all_zero():
    level, sigma = kernels.estimate_background(np.zeros((450, 610), np.float32))
    np.testing.assert_array_equal(level, 0)
    # sigma 1 at the mesh centres; near 1 elsewhere (the reference's zero corner nodes
    # pull the spline down towards the corners)
    np.testing.assert_allclose(sigma[125:-125:200, 105:-105:200], 1, rtol=1e-6)
    assert np.all(np.abs(sigma[100:-100, 100:-100] - 1) < 0.01)


def test_background_writes_into_buffers_and_checks_them():
    im = random_sky((256, 256), 10)
    lv, sg = np.empty_like(im), np.empty_like(im)
    out = kernels.estimate_background(im, 64, level=lv, sigma=sg)
    assert out[0] is lv and out[1] is sg
    with pytest.raises(ValueError):
        kernels.estimate_background(im, 64, level=np.empty((256, 255), np.float32))
    with pytest.raises(ValueError):
        kernels.estimate_background(np.zeros((0, 5), np.float32))


# ------------------------------------------------------------ compression


def test_asinh_compress_equals_numpy():
    rng = np.random.default_rng(3)
    im = rng.normal(100, 300, (123, 77)).astype(np.float32)
    im[0, :5] = [np.nan, 1e6, -1e6, np.inf, -np.inf]
    lv = rng.normal(100, 5, im.shape).astype(np.float32)
    sg = rng.uniform(1, 30, im.shape).astype(np.float32)
    sg[1, :3] = [0, -1, np.nan]
    got = kernels.asinh_compress(im, lv, sg)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.arcsinh((np_sanitize(im) - lv) / sg).astype(np.float32)
    want[1, :3] = 0
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    assert np.all(np.isfinite(got))
    buf = im.copy()
    assert kernels.asinh_compress(buf, lv, sg, out=buf) is buf
    np.testing.assert_array_equal(buf, got)


def test_asinh_is_glibc_asinhf_bit_for_bit():
    """The vectorised asinh equals glibc's asinhf on 2.4M values (libm called through ctypes)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([
        rng.uniform(-1e5, 1e5, 800_000),
        rng.uniform(-10, 10, 1_200_000),
        rng.uniform(-1e-3, 1e-3, 100_000),
        np.exp(rng.uniform(np.log(1e-30), np.log(3e38), 300_000)) * rng.choice([-1, 1], 300_000),
    ]).astype(np.float32)
    edges = np.array([0.0, -0.0, 2.0, -2.0, 2 ** -14, 2 ** 15, 0.41421357, 1e-45, 3.4e38,
                      np.inf, -np.inf], np.float32)
    x = np.concatenate([x, edges, np.nextafter(edges, np.float32(np.inf)),
                        np.nextafter(edges, np.float32(-np.inf))])
    want = libm_asinhf(x)
    got = kernels._glibc_asinhf(x)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    assert np.isnan(kernels._glibc_asinhf(np.float32([np.nan]))).all()


def test_asinh_compress_is_exact():
    rng = np.random.default_rng(6)
    im = rng.normal(100, 300, (500, 500)).astype(np.float32)
    im[::97, ::89] = np.nan
    im[::53, ::7] = rng.uniform(-1e4, 2e5, im[::53, ::7].shape)
    lv = rng.normal(100, 5, im.shape).astype(np.float32)
    sg = rng.uniform(0.01, 30, im.shape).astype(np.float32)
    want = libm_asinhf((np_sanitize(im) - lv) / sg)
    np.testing.assert_array_equal(kernels.asinh_compress(im, lv, sg), want)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (150, 90), (401, 623), (612, 419)])
def test_compress_image_equals_background_then_compression(shape):
    im = random_sky(shape, 21, nan_frac=0.01, stars=5)
    lv, sg = kernels.estimate_background(im, 200)
    want = kernels.asinh_compress(im, lv, sg)
    got = kernels.compress_image(im, 200)
    np.testing.assert_array_equal(got, want)
    buf = im.copy()
    assert kernels.compress_image(buf, 200, out=buf) is buf
    np.testing.assert_array_equal(buf, want)
    assert np.all(np.isfinite(got))


def test_compress_image_checks_out():
    im = np.zeros((10, 12), np.float32)
    with pytest.raises(ValueError):
        kernels.compress_image(im, out=np.zeros((12, 10), np.float32))
    with pytest.raises(ValueError):
        kernels.compress_image(im, out=np.zeros((10, 12), np.float64))


# ------------------------------------------------------------ tiles


@pytest.mark.parametrize("dim", [1, 5, 399, 400, 401, 599, 600, 601, 800, 801, 1000, 4096, 4097])
def test_tile_starts_match_reference(dim):
    starts = kernels.tile_starts(dim, 400, 100)
    assert starts == sorted(set(starts))
    if dim >= 400:
        ref = sorted({y for y, _ in np_ref_tiles(dim, 400, 400)})
        assert starts == ref
    else:
        assert starts == [0]


def stitch_tiles(batch, org, out, h, w, T, M, *args, **kwargs):
    """Stitch whole-tile outputs (N, C, T, T) the way the masker does: each tile's window."""
    windows = kernels.tile_windows(h, w, T, M)
    index = {(int(y), int(x)): k for k, (y, x) in enumerate(kernels.tile_origins(h, w, T, M))}
    for tile, (y, x) in zip(batch, org):
        y0, x0, y1, x1 = windows[index[int(y), int(x)]]
        kernels.stitch(tile[None, :, y0:y1, x0:x1], [[y, x]], out, (y0, x0, y1, x1), *args, **kwargs)
    return out


@pytest.mark.parametrize("h,w,T,M", [(1000, 1200, 400, 100), (873, 1501, 400, 100), (2048, 300, 400, 100),
                                     (401, 799, 400, 100), (130, 97, 32, 8), (64, 65, 64, 0), (5, 3, 8, 2)])
def test_tile_windows_partition_the_image(h, w, T, M):
    org = kernels.tile_origins(h, w, T, M)
    windows = kernels.tile_windows(h, w, T, M)
    assert windows.shape == (len(org), 4)
    count = np.zeros((h, w), np.int32)
    for (y, x), (y0, x0, y1, x1) in zip(org, windows):
        assert 0 <= y0 < y1 <= T and 0 <= x0 < x1 <= T
        count[y + y0: y + y1, x + x0: x + x1] += 1
    np.testing.assert_array_equal(count, 1)
    inner = (org[:, 0] > 0) & (org[:, 0] + T < h) & (org[:, 1] > 0) & (org[:, 1] + T < w)
    inner &= np.isin(org[:, 0] + T - 2 * M, org[:, 0]) & np.isin(org[:, 1] + T - 2 * M, org[:, 1])
    assert np.all(windows[inner] == [M, M, T - M, T - M])


@pytest.mark.parametrize("dim,T,M", [(1000, 64, 8), (100, 64, 0), (37, 16, 7), (16, 16, 4), (5, 8, 2)])
def test_tile_starts_general(dim, T, M):
    s = kernels.tile_starts(dim, T, M)
    assert s[0] == 0 and (s[-1] + T == dim or dim < T)
    assert all(b - a <= T - 2 * M for a, b in zip(s, s[1:]))
    assert all(o + T <= dim for o in s) or dim < T


def test_tile_starts_reject_bad_margin():
    with pytest.raises(ValueError):
        kernels.tile_starts(1000, 400, 200)


@pytest.mark.parametrize("h,w,T,M", [
    (1000, 1200, 400, 100), (873, 1501, 400, 100), (400, 400, 400, 100), (401, 799, 400, 100),
    (130, 97, 32, 8), (1, 300, 64, 16), (300, 1, 64, 16), (10, 13, 64, 16), (64, 65, 64, 0),
])
def test_extract_stitch_round_trip(h, w, T, M):
    im = random_sky((h, w), h * w)
    org = kernels.tile_origins(h, w, T, M)
    batch = kernels.extract_tiles(im, org, T, fill=-7.0)
    assert batch.shape == (len(org), 1, T, T) and batch.flags.c_contiguous
    for (y, x), t in zip(org, batch[:, 0]):
        np.testing.assert_array_equal(t[: h - y, : w - x], im[y: y + T, x: x + T])
        assert np.all(t[h - y:] == -7.0) and np.all(t[:, w - x:] == -7.0)
    out = np.full((1, h, w), np.nan, np.float32)
    stitch_tiles(batch, org, out, h, w, T, M)
    np.testing.assert_array_equal(out[0], im)


@pytest.mark.parametrize("h,w", [(1000, 1200), (873, 1501), (600, 700), (400, 1000)])
def test_stitch_matches_reference_write_order(h, w):
    """Tiles carrying different values where they overlap: each pixel must come from the
    tile the reference writes last (its tile list has another order and duplicates)."""
    T, M = 400, 100
    rng = np.random.default_rng(h + w)
    org = kernels.tile_origins(h, w, T, M)
    batch = rng.random((len(org), 2, T, T), dtype=np.float32)
    out = np.zeros((1, h, w), np.float32)
    stitch_tiles(batch[::-1], org[::-1], out, h, w, T, M, classes=[1])  # any order
    index = {(int(y), int(x)): b for b, (y, x) in enumerate(org)}
    ref_coords = np_ref_tiles(h, w, T)
    assert set(ref_coords) == set(index)
    res = np.stack([batch[index[c], 1] for c in ref_coords])
    np.testing.assert_array_equal(out[0], np_ref_stitch(res, ref_coords, h, w, T))


def test_extract_large_batch_copies_exactly():
    """A batch beyond 64 MiB (copied with non-temporal stores), rows not 16-byte aligned."""
    rng = np.random.default_rng(7)
    im = rng.random((2400, 2403), dtype=np.float32)
    org = kernels.tile_origins(*im.shape, 400, 100)
    assert len(org) * 400 * 400 * 4 > 64 << 20
    b = kernels.extract_tiles(im, org, 400)
    for i, (y, x) in enumerate(org):
        np.testing.assert_array_equal(b[i, 0], im[y: y + 400, x: x + 400])


def test_extract_fused_compression_equals_two_steps():
    im = random_sky((500, 650), 11, nan_frac=0.01, stars=20)
    lv, sg = kernels.estimate_background(im)
    org = kernels.tile_origins(*im.shape, 256, 64)
    fused = kernels.extract_tiles(im, org, 256, level=lv, sigma=sg)
    two = kernels.extract_tiles(kernels.asinh_compress(im, lv, sg), org, 256)
    np.testing.assert_array_equal(fused, two)


def test_extract_rejects_tiles_outside():
    im = np.zeros((500, 500), np.float32)
    with pytest.raises(ValueError):
        kernels.extract_tiles(im, [[0, 200]], 400)
    with pytest.raises(ValueError):
        kernels.extract_tiles(im, [[-1, 0]], 400)


# ------------------------------------------------------------ post-processing


def np_postprocess(p, factors, thresholds):
    pf = p.astype(np.float32)
    if factors is not None:
        f = factors.astype(np.float32)[:, None, None]
        pf = pf / (pf + f * (np.float32(1) - pf))
    return pf, pf > thresholds.astype(np.float32)[:, None, None]


@pytest.fixture(scope="module")
def network_output():
    """A fake network output over a 530 x 610 image: tiles of 64, margin 16."""
    h, w, T, M = 530, 610, 64, 16
    rng = np.random.default_rng(5)
    org = kernels.tile_origins(h, w, T, M)
    full = rng.random((NCLASSES, h, w), dtype=np.float32)  # the "true" probability planes
    full[:, 0, :3] = [0.0, 1.0, 0.5]
    batch = np.zeros((len(org), NCLASSES, T, T), np.float32)
    for b, (y, x) in enumerate(org):
        batch[b] = full[:, y: y + T, x: x + T]
    return h, w, T, M, org, batch, full


def test_stitch_window_batch(network_output):
    """A batch holding only a window of each tile writes that window at origin + (y0, x0)."""
    h, w, T, M, org, batch, full = network_output
    window = (5, 9, 40, 61)
    out = np.zeros((h, w), np.int16)
    kernels.stitch(batch[:, :, 5:40, 9:61], org, out, window, "flags", thresholds=np.full(NCLASSES, 0.5))
    want = np.zeros((h, w), np.int16)
    flagged = (full > 0.5) * np.array([1 << k if k != 13 else 0 for k in range(NCLASSES)])[:, None, None]
    for y, x in org:
        want[y + 5: y + 40, x + 9: x + 61] = flagged[:, y + 5: y + 40, x + 9: x + 61].sum(axis=0)
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="does not match"):
        kernels.stitch(batch, org, out, window, "flags", thresholds=np.full(NCLASSES, 0.5))


@pytest.mark.parametrize("classes", [None, [0, 3, 12], [13], [5, 13, 0]])
def test_stitch_proba_and_binary_equal_numpy(network_output, classes):
    h, w, T, M, org, batch, full = network_output
    sel = np.arange(NCLASSES) if classes is None else np.array(classes)
    fac = kernels.prior_factors(DEFAULT_PRIORS)
    want_p, want_b = np_postprocess(full[sel], fac[sel], DEFAULT_THRESHOLDS[sel])
    out = kernels.output_array("proba", (h, w), len(sel))
    stitch_tiles(batch, org, out, h, w, T, M, "proba", classes, fac)
    np.testing.assert_array_equal(out, want_p)
    raw = kernels.output_array("proba", (h, w), len(sel))
    stitch_tiles(batch, org, raw, h, w, T, M, "proba", classes)
    np.testing.assert_array_equal(raw, full[sel])
    binary = kernels.output_array("binary", (h, w), len(sel))
    stitch_tiles(batch, org, binary, h, w, T, M, "binary", classes, fac, DEFAULT_THRESHOLDS)
    np.testing.assert_array_equal(binary, want_b.astype(np.uint8))
    assert 0 < binary.mean() < 1


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
@pytest.mark.parametrize("classes", [None, [0, 1, 2], [9, 13], [12]])
def test_stitch_flags_and_weight_equal_numpy(network_output, dtype, classes):
    h, w, T, M, org, batch, full = network_output
    sel = np.arange(NCLASSES) if classes is None else np.array(classes)
    fac = kernels.prior_factors(DEFAULT_PRIORS)
    thr = np.full(NCLASSES, 0.7)  # many pixels flagged, so every bit is exercised
    _, flagged = np_postprocess(full[sel], fac[sel], thr[sel])
    bits = np.array([0 if k == 13 else 1 << k for k in sel], np.int64)
    want = (flagged * bits[:, None, None]).sum(axis=0)
    flags = kernels.output_array("flags", (h, w), dtype=dtype)
    stitch_tiles(batch, org, flags, h, w, T, M, "flags", classes, fac, thr)
    assert flags.dtype == dtype
    np.testing.assert_array_equal(flags, want.astype(dtype))
    assert not np.any(flags & (1 << 13))
    weight = kernels.output_array("weight", (h, w))
    stitch_tiles(batch, org, weight, h, w, T, M, "weight", classes, fac, thr)
    np.testing.assert_array_equal(weight, (want == 0).astype(np.uint8))


def test_stitch_threshold_is_strict():
    T = 8
    batch = np.full((1, 2, T, T), 0.5, np.float32)
    out = np.zeros((T, T), np.int16)
    kernels.stitch(batch, [[0, 0]], out, None, "flags", thresholds=[0.5, 0.4])
    np.testing.assert_array_equal(out, 2)


def test_prior_factors():
    t = np.array([0.01, 0.395])
    u = np.array([0.0005, 0.9])
    np.testing.assert_allclose(kernels.prior_factors(u, t),
                               (t / (1 - t)) * ((1 - u) / u), rtol=1e-6)
    assert kernels.prior_factors(DEFAULT_PRIORS).dtype == np.float32


def test_stitch_rejects_bad_outputs(network_output):
    h, w, T, M, org, batch, _ = network_output
    with pytest.raises(ValueError):
        kernels.stitch(batch, org, np.zeros((h, w), np.float64), None, "flags", thresholds=DEFAULT_THRESHOLDS)
    with pytest.raises(ValueError):
        kernels.stitch(batch, org, np.zeros((2, h, w), np.float32), None, "proba", classes=[0])
    with pytest.raises(ValueError):
        kernels.stitch(batch, org, np.zeros((h, w), np.uint8), None, "binary")
    with pytest.raises(ValueError):
        kernels.stitch(batch, org, np.zeros((h, w), np.uint8), None, "weight")  # no thresholds
    with pytest.raises(ValueError):
        kernels.stitch(batch, org[:-1], np.zeros((h, w), np.uint8), None, "proba")
