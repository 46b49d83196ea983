#!/usr/bin/env python3
"""End-to-end throughput and memory of the maximask command, beside the reference.

Generates square fields (maximask.simulation.synthetic), writes them as float32 FITS files, and times
the whole command (read, mask, write FLAGS) with the default settings and with the
reference-exact tiling (-TILE_SIZE 400 -TILE_MARGIN 100), and, when the reference MaxiMask
1.4.1 is importable (PYTHONPATH=<unpacked wheel>, with TensorFlow), the reference command
with its single-mask output, all in the same run. Prints Mpix/s, peak RSS and the ratios,
and the per-class MCC of our default FLAGS against the reference's single mask.

    python benchmarks/bench_e2e.py [--sizes 1024,2048,4096] [--reference-max 2048]
    python benchmarks/bench_e2e.py --sizes 8192 --reference-max 0    # the memory bound
"""
import argparse
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
from astropy.io import fits

from agreement import mask_mcc
from common import Launcher
from maximask.classes import ABBREVIATIONS
from maximask.simulation.synthetic import make_field

REFERENCE = "from maximask_and_maxitrack.maximask.maximask import main; main()"


def reference_available():
    try:
        import maximask_and_maxitrack  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--reference-max", type=int, default=2048,
                        help="largest side run through the reference (it needs ~30 s per Mpix)")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-tiling runs")
    args = parser.parse_args()
    maximask = shutil.which("maximask") or sys.exit("the maximask command is not installed")
    run = Launcher()
    have_ref = reference_available()
    print(f"# {platform.machine()}, {os.cpu_count()} cores; reference "
          f"{'importable' if have_ref else 'not importable (set PYTHONPATH to the unpacked wheel)'}")
    print(f"{'size':>5} {'run':>8} {'seconds':>8} {'Mpix/s':>7} {'RSS MB':>7} {'vs ref':>7} "
          f"{'RSS bound MB':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            field = make_field((size, size), seed=size)
            mpix = field.size / 1e6
            bound = 3 * field.nbytes / 2**20 + 1024
            runs = {}
            for name, extra in [("default", []), ("exact", ["-TILE_SIZE", "400", "-TILE_MARGIN", "100"]),
                                ("reference", None)]:
                if name == "exact" and args.no_exact:
                    continue
                if name == "reference" and not (have_ref and size <= args.reference_max):
                    continue
                folder = os.path.join(tmp, name)
                os.mkdir(folder)
                fits.PrimaryHDU(field).writeto(os.path.join(folder, "field.fits"))
                if name == "reference":
                    cmd = [sys.executable, "-c", REFERENCE, "field.fits", "--single_mask", "True"]
                else:
                    cmd = [maximask, "field.fits", "-VERBOSE_TYPE", "QUIET"] + extra
                runs[name] = run(cmd, folder)
                with fits.open(os.path.join(folder, "field.mask.fits")) as hdul:
                    runs[name] += (hdul[0].data.astype(np.int32),)
            ref_seconds = runs["reference"][0] if "reference" in runs else None
            for name, (seconds, rss, _) in runs.items():
                ratio = f"{ref_seconds / seconds:>7.2f}" if ref_seconds else f"{'-':>7}"
                print(f"{size:>5} {name:>8} {seconds:>8.1f} {mpix / seconds:>7.3f} {rss:>7.0f} {ratio} "
                      f"{bound:>12.0f}")
            if "reference" in runs:
                ref = runs["reference"][2]
                for name in ("default", "exact"):
                    if name in runs:
                        ours = runs[name][2]
                        scores = [mask_mcc((ours >> k) & 1 == 1, (ref >> k) & 1 == 1) for k in range(12)]
                        print(f"      MCC {name} vs reference single mask: min {min(scores):.4f} ("
                              + " ".join(f"{a} {s:.3f}" for a, s in zip(ABBREVIATIONS, scores)) + ")")


if __name__ == "__main__":
    main()
