#!/usr/bin/env python3
"""Agreement and speed of larger tiles against the reference-exact tiling (400/100).

MaxiMask is fully convolutional, so tiles larger than the 400 px it was trained on, with a
margin that keeps enough context, compute each pixel fewer times. For each TILE_SIZE /
TILE_MARGIN pair this runs the masker (all 14 classes, prior correction and thresholds
as default) on several generated fields and compares with the exact tiling: per class the
Matthews correlation coefficient (MCC) of the thresholded masks, summed over the fields
(1.0 when both masks are empty), and the max |dp| of the probabilities; and the time.

    python benchmarks/tiling_study.py [--size 1024] [--fields 3]
"""
import argparse
import time

import numpy as np

from agreement import confusion, mcc
from maximask.classes import ABBREVIATIONS
from maximask.masker import Masker
from maximask.simulation.synthetic import make_field

CANDIDATES = [(400, 100), (512, 64), (768, 64), (600, 100), (800, 100), (1024, 100), (1024, 150),
              (1024, 200), (1280, 200)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="field side (the fields are size x 1.1 size)")
    parser.add_argument("--fields", type=int, default=3)
    parser.add_argument("--candidates", help="e.g. 400/100,800/100 (default: a built-in list)")
    args = parser.parse_args()
    shape = (args.size, int(args.size * 1.1))
    fields = [make_field(shape, seed=100 + k, tracking_error=(k == 2), elongation=1.5 if k == 2 else None)
              for k in range(args.fields)]
    candidates = CANDIDATES
    if args.candidates:
        candidates = [tuple(int(v) for v in c.split("/")) for c in args.candidates.split(",")]
        candidates = [(400, 100)] + [c for c in candidates if c != (400, 100)]
    results = {}
    for tile, margin in candidates:
        masker = Masker(tile_size=tile, tile_margin=margin, output_type="PROBA",
                        classes=",".join(ABBREVIATIONS), verbose_type="QUIET")
        masker.run(fields[0][:tile, :tile])  # warm-up: session creation
        start = time.perf_counter()
        probas = [masker.run(f) for f in fields]
        results[(tile, margin)] = (time.perf_counter() - start, probas, masker.thresholds)

    exact_time, exact, thresholds = results[(400, 100)]
    thr = thresholds[:, None, None]
    mpix = sum(f.size for f in fields) / 1e6
    print(f"# {args.fields} fields of {shape[0]}x{shape[1]}; MCC of thresholded masks and max |dp| "
          "against TILE_SIZE 400 / TILE_MARGIN 100")
    print(f"{'tile/margin':>11} {'Mpix/s':>7} {'speed-up':>8} {'min MCC':>8} {'(class)':>7} {'max|dp|':>8}  "
          + " ".join(f"{a:>5}" for a in ABBREVIATIONS))
    for (tile, margin), (seconds, probas, _) in results.items():
        counts = np.zeros((14, 4), dtype=np.int64)
        maxdp = 0.0
        for p, q in zip(probas, exact):
            for k in range(14):
                counts[k] += confusion(p[k] > thr[k], q[k] > thr[k])
            maxdp = max(maxdp, float(np.abs(p - q).max()))
        mccs = [mcc(c) for c in counts]
        worst = int(np.argmin(mccs))
        print(f"{tile:>5}/{margin:<5} {mpix / seconds:>7.3f} {exact_time / seconds:>8.2f} "
              f"{mccs[worst]:>8.4f} {ABBREVIATIONS[worst]:>7} {maxdp:>8.3f}  "
              + " ".join(f"{m:>5.3f}" for m in mccs))


if __name__ == "__main__":
    main()
