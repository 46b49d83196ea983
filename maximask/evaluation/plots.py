"""maxieval's figures (PNG, with matplotlib, the optional ``plot`` extra).

* ROC: TPR against FPR (log axis down to 1e-6) per class, the operating point in use marked;
* MCC: MCC against the prior-corrected threshold per class, the best MCC marked;
* SAMPLE: one sample as the paper's Fig. 12: input, truth and prediction, each class in its
  Fig. 8 colour (:data:`CLASS_COLOURS`), pixels of several classes in black.
"""
import numpy as np

from ..classes import ABBREVIATIONS, NCLASSES

#: The colours of the paper's Fig. 8, class-table order (pixels of several classes: black).
CLASS_COLOURS = ("#ff0000", "#006400", "#00008b", "#00ff00", "#0000ff", "#ffff00", "#ffa500",
                 "#808080", "#d3d3d3", "#800080", "#cc99ff", "#8b4513", "#ffc0cb", "#404040")
#: Classes drawn as 3x3 squares so that single pixels show (HP, DP), as in the paper's Fig. 8.
DILATED = (ABBREVIATIONS.index("HP"), ABBREVIATIONS.index("DP"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(plt, title):
    fig, axes = plt.subplots(4, 4, figsize=(11, 10), constrained_layout=True)
    fig.suptitle(title)
    for ax in axes.flat[NCLASSES:]:
        ax.axis("off")
    return fig, axes.flat


def roc_figure(report, path):
    """ROC per class: TPR against FPR in [1e-6, 1] (log), the threshold in use as a dot."""
    plt = _pyplot()
    fig, axes = _grid(plt, f"maxieval ROC, {report['samples']} samples")
    for ax, row, curve in zip(axes, report["classes"], report["curves"]):
        ax.set_title(f"{row['abbr']}  AUC {row['auc']:.4f}" if curve["fpr"] else f"{row['abbr']} (none)",
                     fontsize=9)
        ax.set_xscale("log")
        ax.set_xlim(1e-6, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        if curve["fpr"]:
            ax.plot(curve["fpr"], curve["tpr"], color="C0")
            if row["fpr"] and row["fpr"] > 0:
                ax.plot([row["fpr"]], [row["tpr"]], "o", color="C3", ms=4)
        ax.tick_params(labelsize=7)
    fig.supxlabel("false positive rate")
    fig.supylabel("true positive rate")
    fig.savefig(path, dpi=72, format="png")  # path may be a temporary without .png
    plt.close(fig)


def mcc_figure(report, path):
    """MCC against the prior-corrected threshold per class, the best MCC annotated."""
    plt = _pyplot()
    fig, axes = _grid(plt, "maxieval MCC against threshold (PRIORS in use)")
    for ax, row, curve in zip(axes, report["classes"], report["curves"]):
        ax.set_title(row["abbr"], fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        if curve["threshold"]:
            ax.plot(curve["threshold"], curve["mcc"], color="C0")
            ax.plot([row["best_threshold"]], [row["best_mcc"]], "o", color="C3", ms=4)
            ax.annotate(f"{row['best_mcc']:.3f} at {row['best_threshold']:.2f}",
                        (row["best_threshold"], row["best_mcc"]), fontsize=7,
                        xytext=(0.05, 0.05), textcoords="axes fraction")
        ax.tick_params(labelsize=7)
    fig.supxlabel("threshold on the prior-corrected probability")
    fig.supylabel("MCC")
    fig.savefig(path, dpi=72, format="png")  # path may be a temporary without .png
    plt.close(fig)


def _dilate3(mask):
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    out[:, 1:] |= grown[:, :-1]
    out[:, :-1] |= grown[:, 1:]
    return out


def colour_map(planes):
    """(h, w, 3) float image of (14, h, w) bool planes coloured as the paper's Fig. 8.

    The BG plane is not read: BG is where no other class is set; black where several are.
    """
    planes = [(_dilate3(planes[k]) if k in DILATED else planes[k]) for k in range(NCLASSES - 1)]
    count = np.sum(planes, axis=0)
    rgb = np.empty(count.shape + (3,))
    rgb[:] = _rgb(CLASS_COLOURS[NCLASSES - 1])
    for k, plane in enumerate(planes):
        rgb[plane & (count == 1)] = _rgb(CLASS_COLOURS[k])
    rgb[count > 1] = 0.0
    return rgb


def _rgb(colour):
    return np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def sample_figure(image, truth, predicted, path):
    """Input (asinh stretch), truth and prediction (bool (14, h, w) each), side by side."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, 3, figsize=(13, 5), constrained_layout=True)
    finite = image[np.isfinite(image)]
    low, high = np.percentile(finite, [1, 99.5]) if finite.size else (0, 1)
    scaled = np.arcsinh(np.clip((image - low) / max(high - low, 1e-12), 0, None) * 10) / np.arcsinh(10)
    axes[0].imshow(scaled, cmap="gray", origin="lower", vmin=0, vmax=1)
    axes[1].imshow(colour_map(truth), origin="lower")
    axes[2].imshow(colour_map(predicted), origin="lower")
    for ax, title in zip(axes, ("input", "truth", "prediction (THRESHOLDS, PRIORS in use)")):
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=CLASS_COLOURS[k], label=a) for k, a in enumerate(ABBREVIATIONS)]
    handles.append(Patch(color="#000000", label="several"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.savefig(path, dpi=72, format="png")  # path may be a temporary without .png
    plt.close(fig)
