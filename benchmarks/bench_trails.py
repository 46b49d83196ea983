"""The trail stage (TRAIL_SEARCH) and a fine-tuned network against the published network,
on simulated trails in held-out fields, in one run.

    python3 benchmarks/bench_trails.py --quick                     # a few minutes on 2 cores
    python3 benchmarks/bench_trails.py --finetuned trl_real.model  # more fields, 2048 x 2048 cost

Held-out fields: ``maximask.simulation.synthetic.clean_field`` (stars and galaxies) with seeds no test
or training script uses (9000+). Two trail populations, reported apart, both the package's
recipes (``maximask.simulation.inject(classes="TRL", trail_style=...)``):

- "paper": the paper's §2.1.6 recipe (smooth trails across the whole field, flares, meteors);
- "real-like": ``trail_style="real"`` (``maximask.simulation.real_trails``: knotty, tumbling,
  flaring, defocused, aircraft, meteors; half of them ending inside the field; 1-60 sigma).

Truth: the recipe's (light above 0.1 noise sigma, dilated 7 x 7, paper §2.1.6).

Printed, per population, for each network (the published one; with ``--finetuned DIR`` also
a ``maxitrain`` model directory) alone and with the trail stage: TRL AUC (pooled pixels; the
stage sets its pixels' TRL probability to 1), TRL recall at the default thresholds
(prior-corrected, as ``maximask`` flags), false TRL pixels per megapixel (TRL outside the
truth); then, for knotty trails (``real_trails.knotty_trail``: both ends inside, lognormal
knots like the real trail of issue 21) of each length, the faintest ridge (in noise sigma)
whose axis gets TRL over >= 80% of its length; then the stage's cost beside a whole
``maximask`` FLAGS run of one image (2048 x 2048; 1024 x 1024 with --quick).
"""
import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

from maximask import kernels, trails
from maximask.simulation import synthetic
from maximask.simulation.real_trails import knotty_trail
from maximask.classes import ABBREVIATIONS
from maximask.evaluation.metrics import auc
from maximask.masker import Masker
from maximask.simulation import inject
from maximask.simulation.raster import dilate, square_half_widths
from maximask.simulation.trails import TRUTH_THRESHOLD

TRL = ABBREVIATIONS.index("TRL")
BINS = 10000


def knotty_sample(seed, peak, length, size=512):
    rng = np.random.default_rng(seed)
    clean = synthetic.clean_field((size, size), seed=9000 + seed, fwhm=rng.uniform(3.0, 4.5))
    _, sigma = kernels.estimate_background(clean, 200)
    angle = rng.uniform(0, np.pi)
    half = length / 2 * np.array([np.sin(angle), np.cos(angle)])
    cy, cx = (rng.uniform(abs(e) + 10, size - abs(e) - 10) for e in half)  # both ends inside
    light, t, d = knotty_trail(clean.shape, (cy, cx) - half, (cy, cx) + half, peak, 4.5, rng)
    image = (clean + light * np.median(sigma)).astype(np.float32)
    truth = dilate(light > TRUTH_THRESHOLD, square_half_widths(7))  # the recipe's convention
    axis = (np.abs(d) <= 2) & (t >= 0) & (t <= length)
    return image, truth, axis


def recipe_sample(seed, style, size=512):
    """A held-out field with the package's trails of `style` ("paper" or "real")."""
    clean = synthetic.clean_field((size, size), seed=9500 + seed, fwhm=3.0 + seed % 3)
    image, truth = inject(clean, classes="TRL", seed=9500 + seed, trail_style=style)
    return image, truth[TRL], truth[TRL]


class Scorer:
    """Pooled TRL histograms and counts for one method."""

    def __init__(self):
        self.neg, self.pos = np.zeros(BINS, np.int64), np.zeros(BINS, np.int64)
        self.hits = self.truth = self.false = self.pixels = 0

    def add(self, proba, flagged, truth):
        bins = np.minimum((proba * BINS).astype(np.int64), BINS - 1)
        self.neg += np.bincount(bins[~truth], minlength=BINS)
        self.pos += np.bincount(bins[truth], minlength=BINS)
        self.hits += int((flagged & truth).sum())
        self.truth += int(truth.sum())
        self.false += int((flagged & ~truth).sum())
        self.pixels += truth.size

    def row(self):
        return (auc(self.neg, self.pos), self.hits / max(self.truth, 1), self.false / (self.pixels / 1e6))


def run_both(masker, image):
    """(network TRL probability, network TRL flags, stage probability, stage flags, segments)."""
    proba = masker.run(image)  # (K, h, w): every class, prior-corrected
    plane = list(masker.classes).index(TRL)
    net_p = proba[plane].copy()
    net_f = net_p > masker.thresholds[TRL]
    segments = trails.flag_trails(image, proba, "proba", masker.classes, masker.thresholds,
                                  back_size=masker.config.BACK_SIZE)
    return net_p, net_f, proba[plane], proba[plane] > masker.thresholds[TRL], segments


def commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer fields, cost on 1024 x 1024")
    parser.add_argument("--finetuned", metavar="DIR", help="a maxitrain model directory to compare too")
    parser.add_argument("--nthreads", type=int, default=2)
    args = parser.parse_args(argv)
    nfields = 3 if args.quick else 8
    lengths = (100, 200, 400)
    peaks = (2.0, 3.0, 5.0, 9.0) if args.quick else (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0, 14.0)
    cost_size = 1024 if args.quick else 2048
    print(f"# bench_trails: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}")
    print(f"# command: python3 benchmarks/bench_trails.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    # every class's probabilities, the stage applied by run_both
    proba = dict(OUTPUT_TYPE="PROBA", CLASSES=",".join(ABBREVIATIONS), VERBOSE_TYPE="QUIET",
                 NTHREADS=args.nthreads, TRAIL_SEARCH=False)
    maskers = {"published": Masker(**proba)}
    if args.finetuned:
        maskers["fine-tuned"] = Masker(**proba, NETWORK=args.finetuned)
    methods = [(net, stage) for net in maskers for stage in (False, True)]

    def label(net, stage):
        return net + (" + stage" if stage else "")

    print("\n## TRL on held-out fields (512 x 512), pooled pixels")
    print("population   fields  method                  AUC     recall  false TRL px/Mpix")
    for name, style in (("paper", "paper"), ("real-like", "real")):
        scorers = {m: Scorer() for m in methods}
        for seed in range(nfields):
            image, truth, _ = recipe_sample(seed, style)
            for net, masker in maskers.items():
                net_p, net_f, st_p, st_f, _ = run_both(masker, image)
                scorers[net, False].add(net_p, net_f, truth)
                scorers[net, True].add(st_p, st_f, truth)
        for method, scorer in scorers.items():
            a, r, f = scorer.row()
            print(f"{name:12s} {nfields:6d}  {label(*method):22s} {a:7.4f} {r:7.3f} {f:12.0f}")

    print("\n## faintest knotty trail found (axis >= 80% TRL), ridge in noise sigma; '-' none")
    print("length px   " + "   ".join(f"{label(*m):>22s}" for m in methods))
    for length in lengths:
        found = dict.fromkeys(methods)
        for peak in peaks:
            image, truth, axis = knotty_sample(100 + int(length), peak, length)
            for net, masker in maskers.items():
                net_p, net_f, st_p, st_f, _ = run_both(masker, image)
                for method, flags in (((net, False), net_f), ((net, True), st_f)):
                    if found[method] is None and flags[axis].mean() >= 0.8:
                        found[method] = peak
        print(f"{length:9d}   " + "   ".join(f"{found[m] or '-':>22}" for m in methods))

    print(f"\n## cost on {cost_size} x {cost_size} (a field with one paper-recipe trail), seconds, best of 2")
    clean = synthetic.clean_field((cost_size, cost_size), seed=9900, fwhm=3.5)
    image, _ = inject(clean, classes="TRL", seed=9900)
    off = Masker(VERBOSE_TYPE="QUIET", NTHREADS=args.nthreads, TRAIL_SEARCH=False)
    on = Masker(VERBOSE_TYPE="QUIET", NTHREADS=args.nthreads, TRAIL_SEARCH=True)
    stage_seconds, untimed = [], trails.flag_trails

    def timed_stage(*a, **k):  # the masker calls trails.flag_trails: time it inside the run
        started = time.perf_counter()
        try:
            return untimed(*a, **k)
        finally:
            stage_seconds.append(time.perf_counter() - started)

    trails.flag_trails = timed_stage
    try:
        for masker in (off, on):  # sessions made, threads started
            masker.run(image[:256, :256])
        whole = {"off": [], "on": []}
        for _ in range(2):
            for key, masker in (("off", off), ("on", on)):
                started = time.perf_counter()
                masker.run(image)
                whole[key].append(time.perf_counter() - started)
    finally:
        trails.flag_trails = untimed
    stage = min(stage_seconds[1:])  # the warm-up's is on 256 x 256
    print(f"maximask FLAGS run, TRAIL_SEARCH N   {min(whole['off']):7.2f}")
    print(f"maximask FLAGS run, TRAIL_SEARCH Y   {min(whole['on']):7.2f}")
    print(f"trail stage inside the Y run          {stage:7.2f}  = {100 * stage / min(whole['off']):.1f}% of the N run")


if __name__ == "__main__":
    main()
