"""Cosmic rays: MaxiMask against LA Cosmic (astroscrappy), paper §4.1.3 and Fig. 13.

Two sets of CR-only simulated samples (``maximask.simulation.inject(clean, "CR")``): a
well-sampled one (seeing FWHM uniform in [2.5, 6] px) and an undersampled one ([1.2, 2.5]
px), on ``maximask.simulation.synthetic.clean_field`` fields (stars and galaxies, sky 100-5000 ADU,
gain 1 e-/ADU, read noise 3-10 ADU). For each set, in one run:

- MaxiMask: the CR ROC from its raw CR probability (PRIOR_CORRECTION N), its AUC, and its
  TPR at the false-positive rate of LA Cosmic;
- LA Cosmic: astroscrappy.detect_cosmics with its default thresholds (sigclip 4.5,
  sigfrac 0.3, objlim 5) and the true gain and read noise, its mask dilated 3x3 like the
  truth; one operating point (TPR, FPR);
- the time each spent (whole samples, this machine).

    python benchmarks/cr_vs_lacosmic.py --samples 20 --figure cr_vs_lacosmic.png

astroscrappy (and matplotlib for the figure) are benchmark-only dependencies.
"""
import argparse
import time

import numpy as np

from maximask.classes import ABBREVIATIONS
from maximask.evaluation.metrics import ScoreHistograms, auc, roc_curve, tpr_at_fpr
from maximask.masker import Masker
from maximask.simulation import inject
from maximask.simulation.raster import dilate, square_half_widths
from maximask.simulation.synthetic import clean_field

CR = ABBREVIATIONS.index("CR")
SETS = {"well-sampled": (2.5, 6.0), "undersampled": (1.2, 2.5)}


def sample(seed, fwhm_range, size):
    """A CR-only sample: (image, CR truth, read noise in ADU); gain is 1 e-/ADU."""
    rng = np.random.default_rng([seed, 2])
    fwhm = rng.uniform(*fwhm_range)
    read_noise = rng.uniform(3, 10)
    clean = clean_field((size, size), seed=seed, fwhm=fwhm, read_noise=read_noise,
                        star_density=10 ** rng.uniform(np.log10(300), np.log10(5000)),
                        galaxy_density=10 ** rng.uniform(2, np.log10(2000)),
                        sky=10 ** rng.uniform(2, np.log10(5000)), gain=1.0)
    image, truth = inject(clean, "CR", seed=seed, fwhm=fwhm)
    return image, truth[CR], read_noise


def run_set(name, fwhm_range, args, masker):
    import astroscrappy

    hist = ScoreHistograms(nclasses=1)
    la_tp = la_fp = positives = negatives = 0
    t_mm = t_la = 0.0
    for i in range(args.samples):
        image, truth, read_noise = sample(args.seed + i, fwhm_range, args.size)
        t0 = time.perf_counter()
        proba = masker.run(image)[CR]
        t1 = time.perf_counter()
        la_mask, _ = astroscrappy.detect_cosmics(image, gain=1.0, readnoise=read_noise,
                                                 satlevel=float(image.max()) + 1, sigclip=4.5, sigfrac=0.3, objlim=5.0)
        t2 = time.perf_counter()
        t_mm += t1 - t0
        t_la += t2 - t1
        hist.add(proba[None], truth[None])
        la_mask = dilate(la_mask, square_half_widths(3))
        la_tp += int(np.count_nonzero(la_mask & truth))
        la_fp += int(np.count_nonzero(la_mask & ~truth))
        positives += int(np.count_nonzero(truth))
        negatives += int(truth.size - np.count_nonzero(truth))
    neg, pos = hist.counts[0]
    la_tpr, la_fpr = la_tp / positives, la_fp / negatives
    return {"set": name, "fwhm": fwhm_range, "samples": args.samples, "cr_fraction": positives / (positives + negatives),
            "auc": auc(neg, pos), "mm_tpr": tpr_at_fpr(neg, pos, la_fpr), "la_tpr": la_tpr, "la_fpr": la_fpr,
            "mm_time": t_mm, "la_time": t_la, "roc": roc_curve(neg, pos)}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        fpr, tpr = r["roc"]
        keep = fpr > 0
        ax.plot(fpr[keep], tpr[keep], label=f"MaxiMask (AUC {r['auc']:.4f})")
        ax.plot([r["la_fpr"]], [r["la_tpr"]], "o", color="C3", label="LA Cosmic (astroscrappy)")
        ax.set_xscale("log")
        ax.set_xlim(1e-6, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"CR, {r['set']} (FWHM {r['fwhm'][0]}-{r['fwhm'][1]} px)")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="samples per set")
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--figure", help="PNG path for the ROC curves (needs matplotlib)")
    args = parser.parse_args()
    masker = Masker(OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=list(ABBREVIATIONS),
                    VERBOSE_TYPE="QUIET")
    results = [run_set(name, fwhm, args, masker) for name, fwhm in SETS.items()]
    print(f"CR-only samples, {args.samples} of {args.size}x{args.size} per set")
    print(f"{'set':13s} {'FWHM px':>8s} {'CR frac':>8s} {'MM AUC':>7s} {'LA FPR':>9s} {'LA TPR':>7s} "
          f"{'MM TPR':>7s} {'MM time':>8s} {'LA time':>8s}")
    for r in results:
        print(f"{r['set']:13s} {r['fwhm'][0]:3.1f}-{r['fwhm'][1]:3.1f} {r['cr_fraction']:8.4f} {r['auc']:7.4f} "
              f"{r['la_fpr']:9.2e} {r['la_tpr']:7.4f} {r['mm_tpr']:7.4f} {r['mm_time']:7.1f}s {r['la_time']:7.1f}s")
    print("MM TPR: MaxiMask's TPR at LA Cosmic's FPR; times are totals over the set's samples")
    if args.figure:
        plot(results, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
