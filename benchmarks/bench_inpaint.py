"""Inpainting of the CLEANED check-image: which estimator, measured on injected defects.

    python benchmarks/bench_inpaint.py                     # 4 synthetic 1024x1024 fields
    python benchmarks/bench_inpaint.py --clean DATA/sep_image.fits \
        DATA/legacypipe_c4d_170316_062107_ooi_z_ls9.N2.fits

Clean exposures (maximask.simulation.synthetic.make_field without cosmic rays, trail, hot column or
saturated stars; and any --clean FITS files) get one class at a time injected by the
simulator (maximask.simulation.inject: CR, HCL, DCL, HP, DP), whose truth plane says which
pixels to repaint; the clean value of every pixel is known. For each class the table gives
the RMS error of the repainted pixels, (repainted - clean) / sigma, sigma the clean image's
background noise map (maximask.kernels.estimate_background), over all injected pixels and
over those on the sky (clean value within 5 sigma of the background: off the sources), for:

- maximask.kernels.inpaint, each estimator (gauss, idw, plane, median) and min_valid;
- the paper's Gaussian interpolation (§2.1.2): astropy.convolution.interpolate_replace_nans
  with a Gaussian2DKernel of 1 pixel (normalised convolution of the valid pixels);
- astroscrappy.detect_cosmics with cleantype "medmask" and "idw": it repaints the pixels it
  detects itself, so its rows are measured on the injected pixels it repainted, and every
  method's RMS is also given on the injected pixels both variants repainted (in braces).

Then the time of the chosen estimator on a 4096x4096 image with 1% of its pixels flagged,
next to astropy's Gaussian interpolation of the same pixels, in the same run.
"""
import argparse
import time

import numpy as np
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans
from astropy.io import fits

from maximask import checkimages, kernels
from maximask.classes import ABBREVIATIONS
from maximask.simulation import inject
from maximask.simulation.synthetic import make_field

CLASSES = ("CR", "HCL", "DCL", "HP", "DP")
OURS = [(m, n) for m in kernels.INPAINT_METHODS for n in (4, 8)]


def clean_images(args):
    """(name, float32 image) of each clean exposure."""
    out = []
    for seed in range(args.fields):
        field = make_field((args.size, args.size), seed=seed, ncosmics=0, trail=False,
                           hot_column=False, saturated=0)
        out.append((f"synthetic {seed}", field))
    for path in args.clean:
        with fits.open(path) as hdul:
            data = next(h.data for h in hdul if h.data is not None and h.data.ndim == 2)
            out.append((path, np.ascontiguousarray(data, dtype=np.float32)))
    return out


def gaussian_interpolation(image, mask):
    """The paper's Gaussian interpolation: normalised convolution with a 1-pixel Gaussian."""
    holed = image.astype(np.float64)
    holed[mask] = np.nan
    # boundary "extend": astropy's default pads the image with zeros
    return interpolate_replace_nans(holed, Gaussian2DKernel(x_stddev=1.0),
                                    boundary="extend").astype(np.float32)


def astroscrappy_clean(image, sigma, cleantype):
    """astroscrappy's cleaned image (its own detections), read noise = background sigma."""
    import astroscrappy

    _, cleaned = astroscrappy.detect_cosmics(image, gain=1.0, readnoise=float(np.median(sigma)),
                                             satlevel=np.inf, cleantype=cleantype)
    return np.asarray(cleaned, np.float32)


def measure(images, seeds):
    """Errors in sigma per (class, method): dict of lists "all", "sky", "same"; and per
    method (seconds, megapixels) processed."""
    errors, times = {}, {}
    for name, clean in images:
        level, sigma = kernels.estimate_background(clean)
        sky = np.abs(clean - level) < 5 * sigma          # clean pixels of the background
        for seed in seeds:
            for cls in CLASSES:
                image, truth = inject(clean, classes=[cls], seed=seed)
                mask = truth[ABBREVIATIONS.index(cls)]
                if not mask.any():
                    continue
                results = {}
                for method, nmin in OURS:
                    t = time.perf_counter()
                    out, _ = kernels.inpaint(image, mask, method, 8, nmin)
                    results[f"maximask {method} n>={nmin}"] = (out, time.perf_counter() - t)
                t = time.perf_counter()
                results["Gaussian interpolation (astropy)"] = (gaussian_interpolation(image, mask),
                                                               time.perf_counter() - t)
                for cleantype in ("medmask", "idw"):
                    t = time.perf_counter()
                    cleaned = astroscrappy_clean(image, sigma, cleantype)
                    results[f"astroscrappy {cleantype}"] = (cleaned, time.perf_counter() - t)
                # the injected pixels both astroscrappy variants repainted
                same = mask & (results["astroscrappy medmask"][0] != image) \
                    & (results["astroscrappy idw"][0] != image)
                for method, (out, seconds) in results.items():
                    z = (out - clean) / sigma
                    # astroscrappy repaints only what it detects: measured there
                    pixels = mask & (out != image) if method.startswith("astroscrappy") else mask
                    e = errors.setdefault((cls, method), {"all": [], "sky": [], "same": [],
                                                          "injected": 0})
                    e["all"].append(z[pixels])
                    e["sky"].append(z[pixels & sky])
                    e["same"].append(z[same])
                    e["injected"] += int(np.count_nonzero(mask))
                    s, mpix = times.get(method, (0.0, 0.0))
                    times[method] = (s + seconds, mpix + clean.size / 1e6)
    return errors, times


def rms(parts):
    z = np.concatenate(parts) if parts else np.array([])
    z = z[np.isfinite(z)]
    return (float(np.sqrt(np.mean(z * z))), z.size) if z.size else (float("nan"), 0)


def print_table(errors, times):
    methods = list(dict.fromkeys(m for _, m in errors))
    print("RMS error of the repainted pixels in background sigma: all injected pixels "
          "(astroscrappy: those it repainted), [sky: clean value within 5 sigma of the "
          "background], {same: the injected pixels both astroscrappy variants repainted}; "
          "time per megapixel of image\n")
    print("| method | " + " | ".join(CLASSES) + " | s/Mpix |")
    print("|" + "---|" * (2 + len(CLASSES)))
    for method in methods:
        cells = []
        for cls in CLASSES:
            e = errors.get((cls, method))
            if e is None:
                cells.append("-")
                continue
            (a, n), (b, _), (c, m) = rms(e["all"]), rms(e["sky"]), rms(e["same"])
            share = "" if n == e["injected"] else f" of {n / e['injected']:.0%}"
            cells.append(f"{a:.2f}{share} [{b:.2f}] {{{c:.2f}}}" if m else f"{a:.2f}{share} [{b:.2f}]")
        seconds, mpix = times[method]
        print(f"| {method} | " + " | ".join(cells) + f" | {seconds / mpix:.3f} |")
    print("\npixels: " + ", ".join(
        f"{cls} {errors[(cls, methods[0])]['injected']} injected, "
        f"{rms(errors[(cls, methods[0])]['same'])[1]} same" for cls in CLASSES
        if (cls, methods[0]) in errors))


def timing(size=4096, fraction=0.01, repeat=3):
    """Seconds of the chosen estimator on a size^2 image with `fraction` of it flagged."""
    rng = np.random.default_rng(0)
    image = rng.normal(1000, 30, (size, size)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    # cosmic-ray-like clusters: 2x2 blocks at random places until `fraction` is flagged
    while mask.mean() < fraction:
        y, x = rng.integers(0, size - 1, size=(2, 20000))
        mask[y, x] = mask[y + 1, x] = mask[y, x + 1] = mask[y + 1, x + 1] = True
    out = np.empty_like(image)
    best = min(_timed(lambda: kernels.inpaint(image, mask, checkimages.INPAINT_METHOD, 8,
                                              checkimages.INPAINT_MIN_VALID, out=out))
               for _ in range(repeat))
    astropy_s = _timed(lambda: gaussian_interpolation(image, mask))
    print(f"\n{size}x{size}, {mask.mean():.2%} flagged: maximask.kernels.inpaint "
          f"({checkimages.INPAINT_METHOD}, min_valid {checkimages.INPAINT_MIN_VALID}) "
          f"{best:.3f} s (best of {repeat}); astropy Gaussian interpolation {astropy_s:.3f} s")


def _timed(call):
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=4, help="synthetic clean fields")
    ap.add_argument("--size", type=int, default=1024, help="side of the synthetic fields, px")
    ap.add_argument("--seeds", type=int, default=2, help="injections per field and class")
    ap.add_argument("--clean", nargs="*", default=[], help="more clean FITS images")
    args = ap.parse_args(argv)
    errors, times = measure(clean_images(args), range(args.seeds))
    print_table(errors, times)
    timing()


if __name__ == "__main__":
    main()
