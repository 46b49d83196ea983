#!/usr/bin/env python3
"""How small an image can MaxiTrack score? Scores of strips cut from guided and trailed fields.

MaxiTrack sees 400x400 tiles; an image with a side shorter than 400 px is padded, so the
network sees padding where the sky should be. This script cuts strips of height H (and
width W) from synthetic fields without and with a tracking error and prints the mean
score over the strips of each size, so the smallest size that still gives the whole
field's answer can be read off.

    python benchmarks/track_small_images.py [--fields 3]
"""
import argparse

import numpy as np

from maximask import Tracker
from maximask.simulation.synthetic import make_field

SIDES = (5, 25, 50, 100, 150, 200, 250, 300, 400)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=3, help="fields of each kind")
    parser.add_argument("--sides", default=",".join(map(str, SIDES)),
                        help="comma-separated strip heights / block sides (pixels)")
    args = parser.parse_args()
    sides = [int(v) for v in args.sides.split(",")]
    tracker = Tracker()
    rows = {}
    for trailed in (False, True):
        for seed in range(args.fields):
            field = make_field((800, 1600), seed=100 + seed, tracking_error=trailed, trail=False,
                               hot_column=False)
            rows.setdefault((trailed, "full"), []).append(tracker.score(field))
            for side in sides:
                y0 = (800 - side) // 2
                strip = field[y0:y0 + side, :1200]             # side x 1200: height short
                block = field[y0:y0 + side, 200:200 + side]     # side x side: both short
                rows.setdefault((trailed, f"{side} x 1200"), []).append(tracker.score(strip))
                rows.setdefault((trailed, f"{side} x {side}"), []).append(tracker.score(block))
    print(f"{'size (h x w)':>14} {'guided':>10} {'trailed':>10}   (mean score over "
          f"{args.fields} fields, PRIOR 0.05)")
    for size in ["full"] + [f"{s} x 1200" for s in sides] + [f"{s} x {s}" for s in sides]:
        g, t = np.mean(rows[(False, size)]), np.mean(rows[(True, size)])
        print(f"{size:>14} {g:10.4f} {t:10.4f}")


if __name__ == "__main__":
    main()
