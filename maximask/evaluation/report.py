"""maxieval's report: the per-class table (text and JSON) and the lines for a ``.mask`` file.

The table, per class, from the labeled histograms of the samples:

* POS, FRAC: scored positive pixels and their fraction of the scored pixels;
* AUC (and the paper's Table 7 all-contaminant AUC), TPR at FPR 1e-3 and 1e-4;
* THR, TPR, FPR, PUR, MCC: at the THRESHOLDS in use, after correction by the PRIORS in use;
* BEST_THR, BEST_MCC: the threshold of the best MCC (with the same PRIORS) and that MCC;
* EM_FRAC: the EM estimate of FRAC from the samples' probabilities alone (no truth), and
  MCC_EM: the MCC at THR when the probabilities are corrected with EM_FRAC instead.

The lines to paste: ``PRIORS`` = EM on the clean inputs (the user's data as it is), and
``THRESHOLDS`` = the best-MCC thresholds *with those priors* (a class never injected keeps
its threshold in use).
"""
import datetime
import json

import numpy as np

from ..classes import ABBREVIATIONS
from .metrics import FPR_LEVELS, PAPER_AUC, class_metrics, evaluate, mcc_curve, operating_point, prior_shift, roc_curve
from ..outputs import refuse_existing, write_atomically
from .em_priors import estimate_priors

#: Below these, the lines to paste come with a caution: so few samples, or positive pixels
#: of a class behind its threshold, leave the values uncertain.
FEW_SAMPLES = 20
FEW_POSITIVES = 1000

#: Points of the curves kept in the JSON report.
ROC_GRID = np.logspace(-7, 0, 281)
MCC_GRID = np.linspace(0.0, 1.0, 501)


def build_report(evaluation):
    """The report of an :class:`maximask.evaluation.pipeline.Evaluation` as a JSON-ready dict."""
    c = evaluation.config
    hist = evaluation.labeled
    trained = evaluation.training_priors  # those of the network evaluated (NETWORK)
    table = evaluate(hist, c.PRIORS, c.THRESHOLDS, trained)
    sample_em, _ = estimate_priors(hist, trained)
    input_em, _ = estimate_priors(evaluation.unlabeled, trained)
    rows, curves, paste_thresholds, behind = [], [], [], {}
    for k, m in enumerate(table):
        row = m.as_dict()
        scored = m.positives + m.negatives
        row["fraction"] = m.positives / scored if scored else float("nan")
        row["paper_auc"] = PAPER_AUC[m.abbr]
        row["em_fraction"] = float(sample_em[k])
        row["mcc_em"] = operating_point(hist, k, c.THRESHOLDS[k], float(prior_shift(sample_em[k], trained[k])))[3]
        rows.append(row)
        best = class_metrics(hist, k, input_em[k], c.THRESHOLDS[k], trained[k]).best_threshold
        paste_thresholds.append(best if np.isfinite(best) else c.THRESHOLDS[k])
        if np.isfinite(best):
            behind[m.abbr] = int(m.positives)
        curves.append(_curves(hist, k, float(prior_shift(c.PRIORS[k], trained[k]))))
    report = evaluation.summary()
    report.update({
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "priors": list(c.PRIORS), "thresholds": list(c.THRESHOLDS),
        "classes": rows, "curves": curves,
        "paste": {"PRIORS": [float(p) for p in input_em], "THRESHOLDS": [float(t) for t in paste_thresholds],
                  # what they rest on: the clean pixels behind PRIORS, the samples and each
                  # re-estimated class's positive pixels behind THRESHOLDS
                  "clean_pixels": int(evaluation.unlabeled.counts[0].sum()),
                  "positives": behind},
    })
    return report


def _curves(hist, k, shift):
    """ROC and MCC curves of class k, on fixed grids (FPR below 1/N is left out)."""
    neg, pos = hist.counts[k, 0], hist.counts[k, 1]
    if pos.sum() == 0 or neg.sum() == 0:
        return {"abbr": ABBREVIATIONS[k], "fpr": [], "tpr": [], "threshold": [], "mcc": []}
    fpr, tpr = roc_curve(neg, pos)
    grid = ROC_GRID[ROC_GRID * neg.sum() >= 1]
    thresholds, mcc = mcc_curve(hist, k, shift)
    return {"abbr": ABBREVIATIONS[k], "fpr": grid.tolist(),
            "tpr": np.interp(grid, fpr[::-1], tpr[::-1]).tolist(),
            "threshold": MCC_GRID.tolist(), "mcc": np.interp(MCC_GRID, thresholds, mcc).tolist()}


def paste_lines(report):
    """The PRIORS and THRESHOLDS lines for a .mask file (the last two), after comment lines
    saying what they rest on, and a caution when that is little (FEW_SAMPLES, FEW_POSITIVES)."""
    paste = report["paste"]
    priors = ",".join(_inside_unit(p) for p in paste["PRIORS"])
    thresholds = ",".join(f"{t:.3g}" for t in paste["THRESHOLDS"])
    samples, images = report["samples"], len(report["images"])
    positives = paste.get("positives", {})
    lines = [f"# from {samples} sample(s) of {images} clean image(s) ({paste.get('clean_pixels', 0)} clean pixels "
             "for PRIORS); positive pixels behind each threshold: "
             + (", ".join(f"{a} {n}" for a, n in positives.items()) or "none")
             + " (the other classes keep the threshold in use)"]
    few = [f"only {samples} sample(s)"] if samples < FEW_SAMPLES else []
    thin = [a for a, n in positives.items() if n < FEW_POSITIVES]
    if thin:
        few.append(f"fewer than {FEW_POSITIVES} positive pixels for {', '.join(thin)}")
    if few:
        lines.append(f"# caution: {' and '.join(few)}: these values are uncertain; evaluate more samples "
                     "(NSAMPLES) or clean images before using them")
    return lines + [f"PRIORS                 {priors} # EM (Saerens et al. 2002) on the clean inputs",
                    f"THRESHOLDS             {thresholds} # best MCC on the samples with these PRIORS"]


def _inside_unit(p):
    """Shortest text of a prior (3 significant digits or more) that stays inside (0, 1)."""
    for digits in range(3, 17):
        text = f"{p:.{digits}g}"
        if 0 < float(text) < 1:
            return text
    return repr(p)


def _num(x, fmt):
    return "-" if x is None or not np.isfinite(x) else format(x, fmt)


COLUMNS = ("CLASS", "POS", "FRAC", "AUC", "PAPER", "TPR@1e-3", "TPR@1e-4", "THR", "TPR", "FPR",
           "PUR", "MCC", "BEST_THR", "BEST_MCC", "EM_FRAC", "MCC_EM")


def report_text(report):
    """The text report: a commented header, the table, and the lines to paste."""
    n_images = len(report["images"])
    lines = [
        f"# {report['software']} ({report['networks']} networks), {report['date']} UTC",
        f"# {report['samples']} samples ({'whole images' if report['sample_size'] == 0 else str(report['sample_size']) + ' px'}, "
        f"SEED {report['seed']}) from {n_images} clean image{'s' if n_images != 1 else ''}; "
        f"injected: {','.join(report['inject_classes'])}",
        f"# scored pixels: {report['scored_pixels']}; excluded (flagged in the clean inputs): "
        f"{report['excluded_pixels']}" + ("" if report["ignore_flagged"] else " (IGNORE_FLAGGED N)"),
        "# THR/TPR/FPR/PUR/MCC: THRESHOLDS in use, probabilities corrected by the PRIORS in use;",
        "# BEST_THR: threshold of the best MCC with the same PRIORS; PAPER: AUC of the paper's Table 7;",
        "# EM_FRAC: EM estimate of FRAC without the truth; MCC_EM: MCC at THR with the EM_FRAC prior",
    ]
    rows = [COLUMNS]
    for r in report["classes"]:
        rows.append((r["abbr"], str(r["positives"]), _num(r["fraction"], ".3g"), _num(r["auc"], ".5f"),
                     _num(r["paper_auc"], ".5f"),
                     *(_num(r["tpr_at_fpr"][format(level, "g")], ".4f") for level in FPR_LEVELS),
                     _num(r["threshold"], ".3g"), _num(r["tpr"], ".4f"), _num(r["fpr"], ".2e"),
                     _num(r["purity"], ".4f"), _num(r["mcc"], ".4f"), _num(r["best_threshold"], ".3f"),
                     _num(r["best_mcc"], ".4f"), _num(r["em_fraction"], ".3g"), _num(r["mcc_em"], ".4f")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        lines.append(" ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))))
    lines += ["", "# ready to paste into a .mask file:"] + paste_lines(report)
    return "\n".join(lines) + "\n"


def write_report(report, text_path, json_path, overwrite=True):
    """Write the text and JSON reports, each complete or absent; without `overwrite`, one
    that appeared meanwhile is not replaced (OutputExistsError)."""
    text = report_text(report)

    def write_text(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump(_finite(report), f, indent=1)
            f.write("\n")

    write_atomically(text_path, write_text, before_replace=refuse_existing(text_path, overwrite))
    write_atomically(json_path, write_json, before_replace=refuse_existing(json_path, overwrite))
    return text


def _finite(value):
    """NaN and infinities as null, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
