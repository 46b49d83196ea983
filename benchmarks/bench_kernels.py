"""Throughput of the C++ kernels on a 4096 x 4096 image, beside SEP and the reference.

    python3 benchmarks/bench_kernels.py [--size 4096] [--repeat 3] [--reference DIR]

Prints Mpix/s (best of --repeat) of background estimation, compression, tiling and
post-processing (stitch into a FLAGS plane), of the whole preprocessing as the pipeline
runs it (``compress_image`` into a plane, then ``extract_tiles`` of all 400 x 400 tiles at
stride 200), of ``sep.Background(...)`` + ``.back()`` + ``.rms()``
(if ``sep`` is installed; benchmark-only) and of the reference NumPy preprocessing
``maximask_and_maxitrack.utils.image_norm`` (if importable; --reference DIR, or the
environment variable MAXIMASK_REFERENCE, names the unpacked MaxiMask 1.4.1 wheel).
"""
import argparse
import os
import sys
import time

import numpy as np

from maximask import kernels
from maximask.classes import DEFAULT_PRIORS, DEFAULT_THRESHOLDS, NCLASSES


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sky(size, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    im = 1000 + 0.02 * xx + 0.01 * yy + rng.normal(0, 30, (size, size)).astype(np.float32)
    ys, xs = rng.integers(0, size, (2, size * size // 2000))
    im[ys, xs] += rng.uniform(1e3, 1e5, ys.size).astype(np.float32)  # point sources
    return im.astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference", default=os.environ.get("MAXIMASK_REFERENCE"),
                    help="directory holding maximask_and_maxitrack, the unpacked MaxiMask 1.4.1 "
                         "wheel (default: $MAXIMASK_REFERENCE; none: the reference row is skipped)")
    args = ap.parse_args()
    n = args.size
    mpix = n * n / 1e6
    im = sky(n)
    T, M = 400, 100
    rows = []

    def add(name, seconds, note=""):
        rows.append((name, seconds, mpix / seconds, note))

    level, sigma = kernels.estimate_background(im)
    add("background (estimate_background)", best_time(lambda: kernels.estimate_background(im, 200, level, sigma), args.repeat))
    comp = np.empty_like(im)
    add("compression (asinh_compress)", best_time(lambda: kernels.asinh_compress(im, level, sigma, comp), args.repeat))
    org = kernels.tile_origins(n, n, T, M)
    batch = np.empty((len(org), 1, T, T), np.float32)
    add("tiling (extract_tiles, copy)", best_time(lambda: kernels.extract_tiles(comp, org, T, out=batch), args.repeat),
        f"{len(org)} tiles")
    add("tiling + compression fused (extract_tiles)", best_time(
        lambda: kernels.extract_tiles(im, org, T, out=batch, level=level, sigma=sigma), args.repeat))
    plane = np.empty_like(im)
    add("background + compression (compress_image)", best_time(
        lambda: kernels.compress_image(im, 200, plane), args.repeat))

    def preprocess():  # what the pipeline does
        kernels.compress_image(im, 200, plane)
        kernels.extract_tiles(plane, org, T, out=batch)

    t_pre = best_time(preprocess, args.repeat)
    add("preprocessing (compress_image + extract_tiles)", t_pre)

    # post-processing: stitch 14-class outputs of the tiles' central windows into an int16
    # FLAGS plane, in batches of 16 tiles reusing one probability buffer (as the masker does)
    rng = np.random.default_rng(1)
    window = (M, M, T - M, T - M)
    probs = rng.random((16, NCLASSES, T - 2 * M, T - 2 * M), dtype=np.float32)
    flags = np.zeros((n, n), np.int16)
    fac = kernels.prior_factors(DEFAULT_PRIORS)

    def post():
        for i in range(0, len(org), 16):
            o = org[i: i + 16]
            kernels.stitch(probs[: len(o)], o, flags, window, "flags", None, fac, DEFAULT_THRESHOLDS)

    add("post-processing (stitch -> int16 flags, 14 cl.)", best_time(post, args.repeat))

    try:
        import sep

        def sep_bg():
            bkg = sep.Background(im, bw=200, bh=200, fw=3, fh=3)
            bkg.back()
            bkg.rms()

        add("SEP Background + back() + rms()", best_time(sep_bg, args.repeat), f"sep {sep.__version__}")
    except ImportError:
        print("sep not installed: skipping it", file=sys.stderr)

    t_ref = None
    if args.reference and os.path.isdir(args.reference):
        sys.path.insert(0, args.reference)
    try:
        from maximask_and_maxitrack import utils

        t_ref = best_time(lambda: utils.image_norm(im), 1)
        add("reference NumPy image_norm", t_ref, "1 run")
    except ImportError as exc:
        print(f"reference not importable ({exc}): skipping it", file=sys.stderr)

    import multiprocessing
    print(f"image {n} x {n} ({mpix:.1f} Mpix) float32, {multiprocessing.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'kernel':50s} {'time (s)':>9s} {'Mpix/s':>9s}  note")
    for name, s, rate, note in rows:
        if name.startswith("preprocessing") and t_ref:
            note = f"{t_ref / s:.1f}x the reference ({t_ref:.3f} s)"
        print(f"{name:50s} {s:9.3f} {rate:9.1f}  {note}")
    if t_ref:
        print(f"preprocessing speed-up over the reference: {t_ref / t_pre:.1f}x")


if __name__ == "__main__":
    main()
