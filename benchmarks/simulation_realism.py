"""Realism check of the simulator: per-class AUC of the published MaxiMask network on
simulated samples, next to the paper's Table 7 (Paillassa et al. 2020).

The published network was trained on the paper's recipes, so it should recognise ours: a
class far below Table 7 points at a recipe (or at the network). Two contexts as in §4.1.2:
``single`` (one contaminant class per sample; SAT, BBG and BG come along) and ``all``.

    python benchmarks/simulation_realism.py --samples 40 --context single
    python benchmarks/simulation_realism.py --classes TRL --set k_t=3 --png /tmp/trl

Clean fields are ``maximask.simulation.synthetic.clean_field`` with seeing uniform in [1.5, 6] px,
star density log-uniform in [200, 5000] and galaxy density in [100, 2000] per Mpix, sky
log-uniform in [100, 5000] ADU, read noise in [3, 10] ADU and a gradient up to 30%; the
injected stars and trails get the field's seeing. Raw probabilities: Masker with
OUTPUT_TYPE PROBA, PRIOR_CORRECTION N, all 14 classes; AUC from maximask.evaluation.metrics.

``--background sample`` (default) normalises each sample by its own background, as MaxiMask
does on real data; ``--background clean`` by the clean image's, as the paper's sample
pipeline did (Fig. 7: background maps computed on the archive images, before injection).
The two differ where a contaminant corrupts the background estimate (wide overscans).
"""
import argparse
import os
import time

import numpy as np

from maximask import kernels
from maximask.classes import ABBREVIATIONS
from maximask.evaluation.metrics import PAPER_AUC, PAPER_AUC_SINGLE, ScoreHistograms, auc
from maximask.masker import Masker
from maximask.simulation import LOCAL_CLASSES, inject
from maximask.simulation.synthetic import clean_field

def random_clean(seed, size):
    """A varied clean field and its seeing (px)."""
    rng = np.random.default_rng([seed, 1])
    fwhm = rng.uniform(1.5, 6.0)
    field = clean_field((size, size), seed=seed, fwhm=fwhm,
                        star_density=10 ** rng.uniform(np.log10(200), np.log10(5000)),
                        galaxy_density=10 ** rng.uniform(2, np.log10(2000)),
                        sky=10 ** rng.uniform(2, np.log10(5000)), read_noise=rng.uniform(3, 10),
                        gradient=rng.uniform(0, 0.3))
    return field, fwhm


def parse_settings(items):
    """KEY=VALUE strings to simulation parameters (numbers where they parse)."""
    settings = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            settings[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            settings[key] = value
    return settings


def save_png(path, image, truth, proba, k):
    """Input (asinh stretch), truth of class k and its probability side by side."""
    from PIL import Image

    level, sigma = kernels.estimate_background(image)
    stretched = np.clip((np.arcsinh((image - level) / np.maximum(sigma, 1e-6)) + 3) / 12, 0, 1)
    row = np.concatenate([stretched, truth[k].astype(float), proba[k]], axis=1)
    Image.fromarray((row * 255).astype(np.uint8)).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="samples per class (single) or in all")
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--context", choices=("single", "all"), default="single")
    parser.add_argument("--classes", default=",".join(LOCAL_CLASSES))
    parser.add_argument("--set", nargs="*", default=[], help="simulation parameters KEY=VALUE")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--png", help="folder for PNGs of the first samples")
    parser.add_argument("--background", choices=("sample", "clean"), default="sample",
                        help="background the network's input is normalised by")
    args = parser.parse_args()
    settings = parse_settings(args.set)
    classes = [c.strip().upper() for c in args.classes.split(",")]
    masker = Masker(OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=list(ABBREVIATIONS),
                    VERBOSE_TYPE="QUIET")
    runs = [[c] for c in classes] if args.context == "single" else [classes]
    paper = PAPER_AUC_SINGLE if args.context == "single" else PAPER_AUC
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    print(f"{args.context} context, {args.samples} samples of {args.size}x{args.size} per run, "
          f"parameters {settings or 'default'}, {args.background} background")
    print(f"{'class':5s} {'positives':>10s} {'AUC':>8s} {'paper':>8s}   simulate  network")
    for run in runs:
        hist = ScoreHistograms()
        t_sim = t_net = 0.0
        for i in range(args.samples):
            seed = args.seed + i
            clean, fwhm = random_clean(seed, args.size)
            t0 = time.perf_counter()
            image, truth = inject(clean, run, seed=seed, fwhm=fwhm, **settings)
            t1 = time.perf_counter()
            if args.background == "clean":
                proba = masker.run_compressed(kernels.asinh_compress(image, *kernels.estimate_background(clean)))
            else:
                proba = masker.run(image)
            t_net += time.perf_counter() - t1
            t_sim += t1 - t0
            hist.add(proba, truth)
            if args.png and i < 3:
                for abbr in run:
                    k = ABBREVIATIONS.index(abbr)
                    save_png(os.path.join(args.png, f"{abbr}_{seed}.png"), image, truth, proba, k)
        shown = run if args.context == "single" else list(ABBREVIATIONS)
        for abbr in shown:
            k = ABBREVIATIONS.index(abbr)
            neg, pos = hist.counts[k]
            print(f"{abbr:5s} {pos.sum() / (pos.sum() + neg.sum()):10.5f} {auc(neg, pos):8.5f} "
                  f"{paper[abbr]:8.5f}   {t_sim:7.1f}s {t_net:7.1f}s", flush=True)


if __name__ == "__main__":
    main()
