"""The simulated benchmark of docs/benchmarks/simulated_evaluation.md: maxieval on varied clean fields, per-class table vs Table 7.

    python benchmarks/eval_simulated.py --fields 125 --samples 4 --out /tmp/evalbench
    python benchmarks/eval_simulated.py --size 2048 --fields 1 --samples 20 --out /tmp/eval2048

Writes `--fields` clean exposures of `--size` px (maximask.simulation.synthetic.clean_field: FWHM
uniform in [1.5, 6] px, so about a fifth undersampled; star and galaxy densities, sky, read
noise, gain and gradient drawn per field from the seed) into OUT/fields/, then runs

    maxieval OUT/fields -NSAMPLES <samples> -SAMPLE_SIZE 400 -IGNORE_FLAGGED N -INJECT_PROB 1 -TRAIL_STYLE PAPER
             -OUTPUT_NAME OUT/maxieval -VERBOSE_TYPE FULL -OVERWRITE Y [extra keywords]

as a child process under /usr/bin/time -v (when present), and prints its timings, its peak
RSS, the report and the manual's Markdown tables (next to the paper's Table 7). IGNORE_FLAGGED is N because these fields are clean by construction:
pixels the network flags there are false positives to count, not defects to ignore.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys


from common import write_fields
from maximask.evaluation.metrics import PAPER_AUC_SINGLE


def markdown(report):
    """The manual's tables from a maxieval JSON report."""

    def f(x, fmt):
        return "-" if x is None else format(x, fmt)

    lines = ["| class | AUC | paper AUC (all / single) | TPR at FPR 1e-3 | best-MCC threshold | best MCC "
             "| MCC at default threshold |", "|---|---|---|---|---|---|---|"]
    for r in report["classes"]:
        lines.append(f"| {r['abbr']} | {f(r['auc'], '.4f')} | {r['paper_auc']:.4f} / "
                     f"{PAPER_AUC_SINGLE[r['abbr']]:.4f} | {f(r['tpr_at_fpr']['0.001'], '.3f')} | "
                     f"{f(r['best_threshold'], '.3f')} | {f(r['best_mcc'], '.3f')} | {f(r['mcc'], '.3f')} |")
    lines += ["", "| class | true fraction | EM estimate | MCC at default threshold, default prior "
              "| same, EM prior |", "|---|---|---|---|---|"]
    for r in report["classes"]:
        lines.append(f"| {r['abbr']} | {f(r['fraction'], '.3g')} | {f(r['em_fraction'], '.3g')} | "
                     f"{f(r['mcc'], '.3f')} | {f(r['mcc_em'], '.3f')} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=125)
    ap.add_argument("--size", type=int, default=400, help="side of the clean fields, px")
    ap.add_argument("--samples", type=int, default=4, help="NSAMPLES per field")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("extra", nargs="*", help="more maxieval -KEYWORD value pairs (after --)")
    args = ap.parse_args(argv)
    folder = os.path.join(args.out, "fields")
    write_fields(folder, args.fields, args.size, args.seed)
    command = [shutil.which("maxieval") or "maxieval", folder, "-NSAMPLES", str(args.samples),
               "-SAMPLE_SIZE", "400", "-IGNORE_FLAGGED", "N", "-SEED", str(args.seed),
               "-OUTPUT_NAME", os.path.join(args.out, "maxieval"), "-VERBOSE_TYPE", "FULL",
               "-OVERWRITE", "Y", "-INJECT_PROB", "1", "-TRAIL_STYLE", "PAPER",  # the README's setup
               *args.extra]
    if os.path.exists("/usr/bin/time"):
        command = ["/usr/bin/time", "-v"] + command
    print(" ".join(command), flush=True)
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    for line in done.stderr.splitlines():
        if "time:" in line or "Maximum resident" in line or "Elapsed" in line or "PRIORS" in line \
                or "THRESHOLDS" in line or "maxieval:" in line and "%|" not in line:
            print(line.strip())
    with open(os.path.join(args.out, "maxieval.txt")) as f:
        print(f.read())
    with open(os.path.join(args.out, "maxieval.json")) as f:
        print(markdown(json.load(f)))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
