#!/usr/bin/env python3
"""Fine-tuning demo: from the published weights, aim MaxiMask at satellite trails (TRL).

    python benchmarks/finetune_demo.py --out /tmp/finetune --real DATA
           [--steps 2000] [--l2-steps 2000] [--results benchmarks/results]

What it runs, each step a command of the package as a child process, timed:

1. clean fields: `--fields` synthetic 512x512 exposures (the conditions of
   eval_simulated.py) and the real images sep_image.fits (ESO NTT) and the DECam cutout
   of `--real`, cleaned first by ``maximask -CHECKIMAGE_TYPE CLEANED`` (their own cosmic
   rays inpainted, so that the simulator's truth is the only contamination); held out:
   `--eval-fields` other synthetic exposures, never trained on;
2. ``maxieval`` of the published network on held-out samples: the training mix (MIX) and
   the classes left out of it (FR, NEB, OV), 256x256 samples;
3. ``maxitrain`` on MIX with TRL in every sample (FOCUS_CLASSES TRL), the other classes
   held to the published network's logits (DISTILL_STRENGTH), regularised towards the
   published weights; then ``maxieval -NETWORK`` on the same held-out samples;
4. the same training regularised towards zero (the paper's L2), for comparison;
5. the table of AUC and best MCC before and after, the largest AUC drop of another
   class (the demo's criterion: no more than 0.005), and the figure of validation loss.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from common import write_fields

MIX = "CR,HCL,DCL,HP,DP,P,TRL,SAT,SP"
LEFT_OUT = "FR,NEB,OV"
TARGET = "TRL"
REAL = ("sep_image.fits", "legacypipe_c4d_170316_062107_ooi_z_ls9.N2.fits")


def run(args, log):
    """Run a command, its output into `log`; return its wall time in seconds."""
    started = time.perf_counter()
    with open(log, "a") as out:
        out.write("$ " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{args[0]} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def evaluate(out, name, network, classes, args, log):
    """maxieval on the held-out fields; returns {abbr: row} of its JSON report."""
    cmd = ["maxieval", os.path.join(out, "eval_fields"), "-NSAMPLES", str(args.eval_samples),
           "-SAMPLE_SIZE", "256", "-INJECT_CLASSES", classes, "-IGNORE_FLAGGED", "N", "-SEED", "7",
           "-OUTPUT_NAME", os.path.join(out, name), "-CHECKPLOT_TYPE", "NONE", "-OVERWRITE", "Y",
           "-NTHREADS", str(args.threads), "-INJECT_PROB", "1", "-TRAIL_STYLE", "PAPER"]  # its documented setup
    if network:
        cmd += ["-NETWORK", network]
    seconds = run(cmd, log)
    with open(os.path.join(out, name + ".json")) as f:
        report = json.load(f)
    wanted = classes.split(",") + (["BBG", "BG"] if classes == MIX else [])  # BBG, BG: scored in the mix
    return {r["abbr"]: r for r in report["classes"] if r["positives"] and r["abbr"] in wanted}, seconds


def train(out, name, regularisation, steps, args, log):
    model = os.path.join(out, name)
    shutil.rmtree(model, ignore_errors=True)
    cmd = ["maxitrain", os.path.join(out, "train_fields"), "-INJECT_CLASSES", MIX, "-FOCUS_CLASSES", TARGET,
           "-SAMPLE_SIZE", str(args.size), "-NSAMPLES", str(args.samples), "-NVALID", str(args.valid),
           "-STEPS", str(steps), "-BATCH_SIZE", str(args.batch), "-LEARNING_RATE", str(args.lr),
           "-REGULARISATION", regularisation, "-VALID_STEP", str(args.valid_step), "-CHECKPOINT_STEP", "250",
           "-DISTILL_STRENGTH", str(args.distill), "-AUX_LOSSES", args.aux,
           "-OUTPUT_NETWORK", model, "-SEED", "3", "-NTHREADS", str(args.threads)]
    seconds = run(cmd, log)
    with open(os.path.join(model, "model.json")) as f:
        return model, json.load(f), seconds


def prepare(out, args, log):
    """Training fields (synthetic + cleaned real) and held-out fields; returns seconds."""
    started = time.perf_counter()
    train_dir, eval_dir = os.path.join(out, "train_fields"), os.path.join(out, "eval_fields")
    write_fields(train_dir, args.fields, 512, seed=11)
    write_fields(eval_dir, args.eval_fields, 512, seed=12)
    for name in REAL:
        source = os.path.join(args.real, name)
        cleaned = os.path.join(train_dir, "real_" + name.replace(".fits", ".cleaned.fits"))
        run(["maximask", source, "-OUTPUT_DIR", out, "-OVERWRITE", "Y", "-CHECKIMAGE_TYPE", "CLEANED",
             "-CHECKIMAGE_NAME", cleaned], log)
    return time.perf_counter() - started


def table(before, after_pub, after_l2):
    lines = ["| class | AUC published | AUC fine-tuned (PUBLISHED reg.) | AUC fine-tuned (L2 to zero) "
             "| best MCC published | best MCC fine-tuned (PUBLISHED) | best MCC fine-tuned (L2) |",
             "|---|---|---|---|---|---|---|"]
    for abbr, row in before.items():
        b, p, z = row, after_pub[abbr], after_l2.get(abbr) if after_l2 else None
        name = f"**{abbr}**" if abbr == TARGET else abbr
        lines.append(f"| {name} | {b['auc']:.4f} | {p['auc']:.4f} ({p['auc'] - b['auc']:+.4f}) | "
                     + (f"{z['auc']:.4f} ({z['auc'] - b['auc']:+.4f})" if z else "-") + " | "
                     f"{b['best_mcc']:.3f} | {p['best_mcc']:.3f} | " + (f"{z['best_mcc']:.3f}" if z else "-") + " |")
    return "\n".join(lines)


def largest_drop(before, after):
    drops = {a: before[a]["auc"] - after[a]["auc"] for a in before if a != TARGET}
    worst = max(drops, key=drops.get)
    return worst, drops[worst]


def curve_figure(models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, info in models.items():
        def data_terms(r):  # main + aux: the regularisation and distillation measure the weights
            return r["valid_main"] + r.get("valid_aux", 0.0)

        points = [(0, data_terms(info["losses"]["validation_start"]))]
        points += [(r["step"], data_terms(r)) for r in info["losses"]["train"] if "valid_main" in r]
        ax.plot(*zip(*points), marker="o", ms=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("validation cross-entropy")
    ax.set_title("maxitrain, FOCUS_CLASSES TRL: validation loss of the classes trained", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--real", default=os.environ.get("MAXIMASK_REAL_DATA"),
                        help="folder holding the real exposures " + ", ".join(REAL)
                             + " (default: $MAXIMASK_REAL_DATA)")
    parser.add_argument("--fields", type=int, default=16, help="synthetic training fields")
    parser.add_argument("--eval-fields", type=int, default=20, help="held-out synthetic fields")
    parser.add_argument("--eval-samples", type=int, default=6, help="maxieval samples per held-out field")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--l2-steps", type=int, default=2000, help="steps of the L2 run (0: none)")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--valid", type=int, default=48)
    parser.add_argument("--valid-step", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--distill", type=float, default=1.0, help="DISTILL_STRENGTH (0: plain fine-tuning)")
    parser.add_argument("--aux", default="NONE", help="AUX_LOSSES")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--results", default="", help="folder to copy the figure and table into")
    args = parser.parse_args()
    if not args.real:
        sys.exit("finetune_demo: --real DATA (or MAXIMASK_REAL_DATA) must name the folder holding "
                 + ", ".join(REAL))
    missing = [n for n in REAL if not os.path.isfile(os.path.join(args.real, n))]
    if missing:
        sys.exit(f"--real {args.real}: {', '.join(missing)} not found")
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "demo.log")
    open(log, "w").close()
    started = time.perf_counter()
    times = {"fields": prepare(args.out, args, log)}

    before, times["maxieval before (mix)"] = evaluate(args.out, "before", "", MIX, args, log)
    before_out, times["maxieval before (left out)"] = evaluate(args.out, "before_left_out", "", LEFT_OUT, args, log)
    model, info, times["maxitrain PUBLISHED"] = train(args.out, "trl_published.model", "PUBLISHED", args.steps, args, log)
    after, times["maxieval after (mix)"] = evaluate(args.out, "after", model, MIX, args, log)
    after_out, times["maxieval after (left out)"] = evaluate(args.out, "after_left_out", model, LEFT_OUT, args, log)
    models = {f"towards the published weights ({args.steps} steps)": info}
    after_l2 = after_l2_out = None
    if args.l2_steps:
        model_l2, info_l2, times["maxitrain ZERO (L2)"] = train(args.out, "trl_l2.model", "ZERO", args.l2_steps,
                                                                args, log)
        after_l2, times["maxieval after L2 (mix)"] = evaluate(args.out, "after_l2", model_l2, MIX, args, log)
        after_l2_out, times["maxieval after L2 (left out)"] = evaluate(args.out, "after_l2_left_out", model_l2,
                                                                       LEFT_OUT, args, log)
        models[f"towards zero, L2 ({args.l2_steps} steps)"] = info_l2

    total = time.perf_counter() - started
    print(f"samples {args.size}x{args.size}, batch {args.batch}, lr {args.lr}, distillation {args.distill}, "
          f"aux losses {args.aux}, {args.samples} training samples, {args.valid} validation samples; "
          f"{args.threads} threads\n")
    print(table({**before, **before_out}, {**after, **after_out},
                {**after_l2, **after_l2_out} if after_l2 else None))
    for label, (b, a) in {"PUBLISHED": ({**before, **before_out}, {**after, **after_out}),
                          **({"L2": ({**before, **before_out}, {**after_l2, **after_l2_out})} if after_l2 else {})
                          }.items():
        worst, drop = largest_drop(b, a)
        print(f"\n{label}: {TARGET} AUC {b[TARGET]['auc']:.4f} -> {a[TARGET]['auc']:.4f}, best MCC "
              f"{b[TARGET]['best_mcc']:.3f} -> {a[TARGET]['best_mcc']:.3f}; largest AUC fall of another class: "
              f"{worst} {drop:.4f} ({'within' if drop <= 0.005 else 'BEYOND'} 0.005)")
    for label, m in models.items():
        t = m["training"]
        print(f"{label}: {t['seconds']:.0f} s training, {t['steps'] * t['batch_size'] / t['seconds']:.2f} samples/s")
    print("\ntimes: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {total / 60:.1f} min")
    figure = os.path.join(args.out, "finetune_validation_loss.png")
    curve_figure(models, figure)
    print(f"figure: {figure}")
    if args.results:
        shutil.copy(figure, args.results)


if __name__ == "__main__":
    main()
