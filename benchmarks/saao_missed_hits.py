"""The cosmic-ray hits of a real raw frame that LA Cosmic finds and MaxiMask does not flag.

    python benchmarks/saao_missed_hits.py [--frame examples/ccdproc_a8280271.fits.fz]

The frame: SAAO 1.0 m / STE3 CCD, 150 s, raw (overscan on both sides; GAIN 1.9 e-/ADU,
RDNOISE 5 e- in its header). astroscrappy (LA Cosmic, benchmark-only dependency; default
thresholds sigclip 4.5, sigfrac 0.3, objlim 5, the header's gain and read noise) is run on the
trimmed section (TRIMSEC); MaxiMask on the whole frame, default configuration, raw
probabilities (PRIOR_CORRECTION N) and flags (default priors and thresholds). For each
LA Cosmic hit (8-connected group of its mask): its size (px), its peak above the local
background in sigma_U (the project's background kernel), the largest raw CR probability over
the hit and its 3x3 surrounding, whether MaxiMask flags CR there and which classes it flags.
The hits not flagged CR are listed, with the classes whose raw probability is highest there.
"""
import argparse
import os

import numpy as np
from astropy.io import fits

from maximask import Masker, kernels
from maximask.classes import ABBREVIATIONS
from maximask.simulation.raster import dilate, square_half_widths

CR = ABBREVIATIONS.index("CR")
FRAME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "ccdproc_a8280271.fits.fz")


def components(mask):
    """8-connected components of a bool mask: a list of (ys, xs) index arrays."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    return [np.nonzero(labels == k) for k in range(1, n + 1)]


def main():
    import astroscrappy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", default=FRAME)
    parser.add_argument("--min-sigma", type=float, default=0.0, help="list only hits above this peak")
    parser.add_argument("--network", default="", help="a fine-tuned model directory (maximask NETWORK)")
    args = parser.parse_args()
    data = fits.getdata(args.frame).astype(np.float32)
    header = fits.getheader(args.frame)
    gain, read_noise = float(header.get("GAIN", 1.0)), float(header.get("RDNOISE", 5.0))
    x0, x1 = 16, 528  # TRIMSEC [17:528, 1:520], 1-based inclusive
    proba = Masker(OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=ABBREVIATIONS, NETWORK=args.network,
                   VERBOSE_TYPE="QUIET").run(data)
    flags = Masker(OUTPUT_TYPE="FLAGS", NETWORK=args.network, VERBOSE_TYPE="QUIET").run(data)
    trimmed = np.ascontiguousarray(data[:, x0:x1])
    level, sigma = kernels.estimate_background(trimmed)
    sigma_u = float(np.median(sigma))
    lacosmic, _ = astroscrappy.detect_cosmics(trimmed, gain=gain, readnoise=read_noise)
    hits = components(lacosmic)
    print(f"{args.frame}: {len(hits)} LA Cosmic hits in TRIMSEC; sigma_U {sigma_u:.1f} ADU; "
          f"MaxiMask flags CR on {int(((flags >> CR) & 1).sum())} px")
    print("| y | x | px | peak (sigma_U) | max raw P(CR) | CR flagged | classes flagged | highest raw P there |")
    print("|---|---|---|---|---|---|---|---|")
    missed = 0
    for ys, xs in hits:
        xs_full = xs + x0
        peak = float((trimmed[ys, xs] - level[ys, xs]).max() / sigma_u)
        if peak < args.min_sigma:
            continue
        around = np.zeros(data.shape, bool)
        around[ys, xs_full] = True
        around = dilate(around, square_half_widths(3))
        p_cr = float(proba[CR][around].max())
        bits = np.bitwise_or.reduce(flags[around])
        flagged = [a for k, a in enumerate(ABBREVIATIONS) if (bits >> k) & 1]
        if "CR" in flagged:
            continue
        missed += 1
        top = np.argsort([-proba[k][around].max() for k in range(12)])[:2]
        highest = ", ".join(f"{ABBREVIATIONS[k]} {proba[k][around].max():.3f}" for k in top)
        print(f"| {int(ys.mean())} | {int(xs_full.mean())} | {ys.size} | {peak:.0f} | {p_cr:.3f} | no | "
              f"{','.join(flagged) or '-'} | {highest} |")
    print(f"{missed} of {len(hits)} LA Cosmic hits not flagged CR by MaxiMask")
    outside = np.ones(data.shape, bool)
    outside[:, x0:x1] &= ~dilate(lacosmic, square_half_widths(3))
    print(f"CR-flagged pixels away from every LA Cosmic hit: {int((((flags >> CR) & 1) > 0)[outside].sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
