"""Which cosmic rays does the published network recognise: the built-in generator's or real ones?

    python benchmarks/real_cosmics.py --samples 10 --out /tmp/realcr

For each CR source (BUILTIN: the generator of maximask.simulation.cosmics; IMSIM: the 1,764
real hits of LSST ITL darks shipped in maximask/simulation/data), runs

    maxieval FIELDS -INJECT_CLASSES CR -CR_SOURCE <source> -SAMPLE_SIZE 0 -NSAMPLES <n>
             -CHECKPLOT_TYPE NONE -OUTPUT_NAME OUT/<source> -OVERWRITE Y -VERBOSE_TYPE QUIET

on real clean fields (default: the ESO NTT field of sep and the DECam z-band cutout of
legacypipe, in the folder $MAXIMASK_REAL_DATA; IGNORE_FLAGGED Y, so their own defects the network flags
are left out) and prints the CR AUC, the TPR and FPR at the default threshold and the TPR at
FPR 1e-3 and 1e-4 (ROC curves of the JSON report), one Markdown row per source and field set.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

#: The folder of small real exposures (sep_image.fits, the legacypipe DECam cutout).
REAL = os.environ.get("MAXIMASK_REAL_DATA", "real")
FIELDS = [os.path.join(REAL, "sep_image.fits"),
          os.path.join(REAL, "legacypipe_c4d_170316_062107_ooi_z_ls9.N2.fits")]


def run(fields, source, samples, out, seed, extra=()):
    name = os.path.join(out, source.lower())
    command = ["maxieval", *fields, "-INJECT_CLASSES", "CR", "-CR_SOURCE", source, "-SAMPLE_SIZE", "0",
               "-NSAMPLES", str(samples), "-SEED", str(seed), "-CHECKPLOT_TYPE", "NONE", "-OUTPUT_NAME", name,
               "-OVERWRITE", "Y", "-VERBOSE_TYPE", "QUIET", *extra]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    with open(name + ".json") as f:
        return json.load(f)


def figures(report):
    row = next(r for r in report["classes"] if r["abbr"] == "CR")
    curve = next(c for c in report["curves"] if c["abbr"] == "CR")
    fpr, tpr = np.asarray(curve["fpr"]), np.asarray(curve["tpr"])

    def at(target):
        return float(np.interp(target, fpr, tpr)) if fpr.size and fpr.min() <= target else float("nan")

    return {"positives": row["positives"], "auc": row["auc"], "tpr": row["tpr"], "fpr": row["fpr"],
            "tpr@1e-3": at(1e-3), "tpr@1e-4": at(1e-4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="samples per field and source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/real_cosmics")
    parser.add_argument("--fields", nargs="*", default=FIELDS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("| CR source | field | CR pixels | AUC | TPR | FPR | TPR at FPR 1e-3 | TPR at FPR 1e-4 |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for field in args.fields:
        for source in ("BUILTIN", "IMSIM"):
            f = figures(run([field], source, args.samples, args.out, args.seed))
            rows.append(f"| {source} | {os.path.basename(field)} | {f['positives']} | {f['auc']:.4f} | "
                        f"{f['tpr']:.3f} | {f['fpr']:.1e} | {f['tpr@1e-3']:.3f} | {f['tpr@1e-4']:.3f} |")
            print(rows[-1], flush=True)
    print("\n".join(["", "| CR source | field | CR pixels | AUC | TPR | FPR | TPR at FPR 1e-3 | TPR at FPR 1e-4 |",
                     "|---|---|---|---|---|---|---|---|"] + rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
