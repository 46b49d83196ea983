"""The maxitrain pipeline: fine-tune MaxiMask or MaxiTrack on one's own images (paper §3.1.2).

MaxiMask (TRAIN_NETWORK MAXIMASK), from clean exposures:

1. every image HDU (cube plane) of the inputs is a clean field, its FWHM measured (or
   SEEING_FWHM); VALID_FRAC of them are kept apart for validation;
2. training sample i and validation sample j are drawn by ``maximask.training.samples``
   (simulator, augmentations, dynamic compression), functions of SEED and their index;
   the class weights (eq. 15) come once from the training set's class fractions;
3. seeded Adam over STEPS steps of BATCH_SIZE samples (epochs over NSAMPLES), the loss of
   §3.1.2 (class weights from the starting network's training priors, CLASS_WEIGHTS
   NETWORK, or the samples' fractions), with DISTILL_STRENGTH > 0 aimed at FOCUS_CLASSES
   while the other classes keep the starting network's logits; a checkpoint every
   CHECKPOINT_STEP steps (a killed run resumes from it), the validation loss every
   VALID_STEP steps;
4. on the validation samples: the training priors (eq. 27) and the thresholds of the
   best MCC where each class covers its default PRIOR's fraction of the pixels (the
   samples' own mix would give thresholds that flag noise on a sky); both go into
   model.json with the run's summary, and the model directory OUTPUT_NETWORK is written
   (complete or absent); the checkpoint is removed.

MaxiTrack (TRAIN_NETWORK MAXITRACK), from labelled exposures: the inputs are text files of
``file label`` lines (label 1: tracking error, 0: none); 400x400 windows are the samples,
the loss is the softmax cross-entropy with class weights inverse to the label fractions.
"""
import copy
import os
import time

import numpy as np

from .. import __version__, fitsio, inputs, outputs
from ..errors import InputError, OutputError
from ..classes import ABBREVIATIONS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS
from ..config import ConfigError
from ..engine import EngineError, model_info, model_path

#: Keywords that do not change what a run computes: a checkpoint resumes across them.
RESUMABLE_ACROSS = ("STEPS", "VALID_STEP", "CHECKPOINT_STEP", "CHECKPOINT_NAME", "OUTPUT_NETWORK",
                    "DEVICE", "NTHREADS", "VERBOSE_TYPE")
TRACK_TILE = 400
VALIDATION_SEED = 1 << 40  # validation samples: seed SEED + this, apart from the training ones


def import_torch():
    """torch, or a ConfigError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ConfigError("maxitrain needs PyTorch: pip install 'maximask[train]'") from None
    return torch


def sky_threshold(hist, k, training_prior):
    """The threshold of class k for maximask's flags: the best MCC where the class covers
    its default PRIOR's fraction of the pixels (``metrics.mcc_curve_at_fraction``), on p'
    corrected from `training_prior` to that prior, as maximask corrects."""
    from ..evaluation.metrics import mcc_curve_at_fraction, prior_shift

    shift = float(prior_shift(DEFAULT_PRIORS[k], training_prior))
    thresholds, curve = mcc_curve_at_fraction(hist, k, shift, float(DEFAULT_PRIORS[k]))
    return float(thresholds[int(np.argmax(curve))])


def torch_device(name):
    """The torch.device of DEVICE (AUTO: CUDA when PyTorch sees one); EngineError if unusable."""
    torch = import_torch()
    cuda = torch.cuda.is_available()
    if name == "CUDA" and not cuda:
        raise EngineError("DEVICE CUDA: PyTorch sees no CUDA device (use DEVICE CPU or AUTO)")
    return torch.device("cuda" if name == "CUDA" or (name == "AUTO" and cuda) else "cpu")


def checkpoint_path(config):
    return config.CHECKPOINT_NAME or config.OUTPUT_NETWORK.rstrip("/") + ".ckpt"


def check_outputs(config, protect=frozenset()):
    """Before any work: OUTPUT_NETWORK must not exist and its folder must take it; the
    checkpoint must not be an input (ConfigError, one line). NETWORK is checked by Training."""
    out = config.OUTPUT_NETWORK
    if os.path.lexists(out):
        raise ConfigError(f"OUTPUT_NETWORK {out}: already exists; a model directory is never replaced",
                          keyword="OUTPUT_NETWORK")
    for path in (out, checkpoint_path(config)):
        try:
            outputs.check_not_input(path, protect)
            outputs.check_writable(os.path.dirname(os.path.abspath(path)))
        except OutputError as exc:
            raise ConfigError(f"{path}: {exc.problem}") from None


def read_labels(path, errors):
    """[(ImageSource, label)] from a text file of ``file label`` lines (# comments); a
    bad line or file is appended to `errors` as an InputError, the others are kept."""
    pairs = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(InputError(path, f"cannot read the label list ({getattr(exc, 'strerror', None) or exc})"))
        return pairs
    for number, line in enumerate(lines, 1):
        words = line.split("#")[0].split()
        if not words:
            continue
        if len(words) != 2 or words[1] not in ("0", "1"):
            errors.append(InputError(f"{path}:{number}",
                                            f"expected 'file label' with label 0 or 1, got {line.strip()!r}"))
            continue
        found = inputs.find_inputs([words[0]], errors=errors)
        pairs += [(source, int(words[1])) for source in found]
    return pairs


class Training:
    """One maxitrain run, configured by the keywords of ``maxitrain -d``; `log` takes lines."""

    def __init__(self, config, log=None):
        self.config = c = config
        self.log = log or (lambda line: None)
        self.name = c.TRAIN_NETWORK.lower()
        self.base = model_info(self.name, c.NETWORK)  # the starting network: label, digest, training priors
        self.torch = import_torch()
        self.device = torch_device(c.DEVICE)
        if c.NTHREADS:
            self.torch.set_num_threads(c.NTHREADS)
        self.fields, self.labels = [], []
        self.checkpoint = checkpoint_path(c)

    # ------------------------------------------------------------------ inputs

    def add_file(self, source, label=None):
        """Read every image of `source` as a field (label: MaxiTrack's 0/1); InputError if none."""
        from .samples import CleanField

        # None: measured; MaxiTrack's samples do not use it (0: not measured)
        fwhm = (self.config.SEEING_FWHM or None) if self.name == "maximask" else 0.0
        for name, plane, _ in fitsio.image_planes(source, self.log, accept=inputs.CLEAN_FIELDS):
            field = CleanField.from_array(name, plane, fwhm=fwhm)
            self.fields.append(field)
            self.labels.append(label)
            if self.name == "maximask":
                seeing = "not measured (too few stars): stars and trails drawn at 2-6 px" \
                    if field.fwhm is None else f"FWHM {field.fwhm:.2f} px"
                self.log(f"{name}: {plane.shape[1]}x{plane.shape[0]}, {seeing}")

    # ------------------------------------------------------------------ samples

    def sample_sets(self):
        """(training set, validation set, their fields' names) from the fields read."""
        from ..evaluation.pipeline import read_frame, simulation_options
        from .samples import SampleSet, TileSet, split_fields

        c = self.config
        indexed = list(range(len(self.fields)))
        if len(indexed) < 2:
            raise ConfigError(f"{len(indexed)} clean image given (each image HDU or cube plane counts as one): "
                              "at least 2 are needed, one kept apart for validation (VALID_FRAC of them, at "
                              "least one): add another clean field")
        try:
            train, valid = split_fields(indexed, c.VALID_FRAC, c.SEED)
            pick = lambda ids: [self.fields[i] for i in ids]  # noqa: E731
            if self.name == "maxitrack":
                sets = [TileSet(pick(ids), [self.labels[i] for i in ids], TRACK_TILE, seed, c.BACK_SIZE)
                        for ids, seed in ((train, c.SEED), (valid, c.SEED + VALIDATION_SEED))]
            else:
                options = {"saturation": c.SATUR_LEVEL} if c.SATUR_LEVEL > 0 else {}
                options.update(simulation_options(c, [read_frame(p) for p in c.DARK_FRAMES]))
                focus = [a for a in c.FOCUS_CLASSES if a != "NONE"]
                sets = [SampleSet(pick(ids), c.SAMPLE_SIZE, list(c.INJECT_CLASSES), focus, seed, c.BACK_SIZE,
                                  c.REBIN, c.OFFSET_SIGMA, **options)
                        for ids, seed in ((train, c.SEED), (valid, c.SEED + VALIDATION_SEED))]
        except ValueError as exc:
            raise ConfigError(f"cannot draw samples: {exc}") from None
        return sets[0], sets[1], {"training": [f.name for f in pick(train)], "validation": [f.name for f in pick(valid)]}

    # ------------------------------------------------------------------ network and loss

    def network(self):
        """The starting module (NETWORK or the published weights), with TRAIN_LAYERS trainable."""
        from . import load_network, set_trainable

        c = self.config
        path = model_path(self.name, "CPU", c.NETWORK) if c.NETWORK else None
        network = load_network(self.name, path)
        if tuple(c.TRAIN_LAYERS) != ("ALL",):
            try:
                trainable = set_trainable(network, c.TRAIN_LAYERS)
            except ValueError as exc:
                raise ConfigError(f"TRAIN_LAYERS: {exc}", keyword="TRAIN_LAYERS") from None
            self.log(f"training {len(trainable)} of {len(list(network.parameters()))} parameter tensors")
        return network.to(self.device)

    def loss(self, network, train_set):
        """The loss module, its class weights from the training set (computed once)."""
        from .loss import AUX_THREE_SMALLEST, AUX_TWO_SMALLEST, MaskLoss, TrackLoss, class_weights

        c = self.config
        reference = {k: v.detach().clone() for k, v in network.state_dict().items()}
        if self.name == "maxitrack":
            fractions = train_set.label_fractions()
            weights = np.where(fractions > 0, 0.5 / np.maximum(fractions, 1e-12), 0.0)
            self.summary_data = {"label_fractions": fractions.tolist()}
            return TrackLoss(weights, c.REGULARISATION, c.REG_STRENGTH, reference).to(self.device)
        count = min(c.NSAMPLES, 200)
        fractions = train_set.class_fractions(count)
        self.summary_data = {"class_fractions": dict(zip(ABBREVIATIONS, fractions.tolist())),
                             "class_fractions_samples": count}
        # NETWORK: the weights the starting network was trained with, so that its outputs
        # need not be recalibrated to a new class balance before they can improve
        basis = self.base["training_priors"] if c.CLASS_WEIGHTS == "NETWORK" else fractions
        aux = {"THREE_SMALLEST": AUX_THREE_SMALLEST, "TWO_SMALLEST": AUX_TWO_SMALLEST, "NONE": {}}[c.AUX_LOSSES]
        teacher = copy.deepcopy(network) if c.DISTILL_STRENGTH > 0 else None  # the starting network, frozen
        focus = [ABBREVIATIONS.index(a) for a in c.FOCUS_CLASSES if a != "NONE"]
        return MaskLoss(class_weights(basis), aux, c.REGULARISATION, c.REG_STRENGTH, reference, teacher, focus,
                        c.DISTILL_STRENGTH).to(self.device)

    # ------------------------------------------------------------------ run

    def tensors(self, arrays):
        x, y = arrays
        return self.torch.from_numpy(x).to(self.device), self.torch.from_numpy(y).to(self.device)

    def run(self):
        """Train, validate and export; returns model.json's content."""
        from .._progress import on_terminal
        from .export import export_network
        from .trainer import CheckpointError, load_checkpoint, train

        c, torch = self.config, self.torch
        ckpt = checkpoint_path(c)
        try:  # a damaged checkpoint is said before any work
            if os.path.exists(ckpt):
                load_checkpoint(ckpt)
        except CheckpointError as exc:
            raise ConfigError(f"{exc}: remove it or set another CHECKPOINT_NAME") from None
        train_set, valid_set, split = self.sample_sets()
        self.log(f"{len(split['training'])} image(s) for training, {len(split['validation'])} kept for validation: "
                 f"{', '.join(split['validation'])}")
        self.log_plan()
        network = self.network()
        loss = self.loss(network, train_set)
        # drawn once: the validation losses, tables and priors all score these batches
        valid = [self.tensors(valid_set.batch(range(a, min(a + c.BATCH_SIZE, c.NVALID))))
                 for a in range(0, c.NVALID, c.BATCH_SIZE)]

        def batches(step):
            first = step * c.BATCH_SIZE
            indices = []
            for position in range(first, first + c.BATCH_SIZE):
                epoch, place = divmod(position, c.NSAMPLES)
                order = np.random.default_rng([c.SEED, epoch]).permutation(c.NSAMPLES)
                indices.append(int(order[place]))
            return self.tensors(train_set.batch(indices))

        def validation_loss():
            """Mean data terms on the validation samples: main, aux and their sum (total);
            the regularisation and distillation terms measure the weights, not the data."""
            with torch.no_grad():
                totals = {"main": 0.0, "aux": 0.0}
                for x, y in valid:
                    parts = loss(network, x, y)
                    for key in ("main", "aux"):
                        totals[key] += float(parts.get(key, 0.0)) * len(x)
            totals["total"] = totals["main"] + totals["aux"]
            return {f"valid_{k}": v / c.NVALID for k, v in totals.items()}

        def validate(step):
            if step % c.VALID_STEP == 0 or step == c.STEPS:
                return validation_loss()
            return None

        started = time.perf_counter()
        reporter = Progress(c, self.log, on_terminal() and c.VERBOSE_TYPE != "QUIET")
        tag = {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.items() if k not in RESUMABLE_ACROSS}
        tag["inputs"] = [f.name for f in self.fields]
        if os.path.exists(ckpt):
            self.log(f"resuming from checkpoint {ckpt}")
        with torch.no_grad():
            network.eval()
            start = validation_loss()
        self.log(f"validation loss before training: {start['valid_total']:.6g}")
        before = None
        if self.name == "maximask":
            before, _ = self.validation_table(network, valid, self.base["training_priors"])
        try:
            history = train(network, loss, batches, c.STEPS, lr=c.LEARNING_RATE, seed=c.SEED, checkpoint=ckpt,
                            every=c.CHECKPOINT_STEP, log=reporter, validate=validate, tag=tag)
        except CheckpointError as exc:
            raise ConfigError(f"{exc}: remove it or set CHECKPOINT_NAME") from None
        finally:
            reporter.close()
        seconds = time.perf_counter() - started

        metadata = self.validation_metadata(network, valid, before)
        metadata.update({
            "base_model": {"label": self.base["label"], "weights_sha256": self.base["weights_sha256"]},
            "data": {"images": split, "samples": c.NSAMPLES, "validation_samples": c.NVALID,
                     "sample_size": TRACK_TILE if self.name == "maxitrack" else c.SAMPLE_SIZE,
                     "inject_classes": list(c.INJECT_CLASSES) if self.name == "maximask" else [],
                     "focus_classes": [a for a in c.FOCUS_CLASSES if a != "NONE"] if self.name == "maximask" else [],
                     "fwhm": {f.name: f.fwhm for f in self.fields} if self.name == "maximask" else {},
                     **self.summary_data},
            "training": {"steps": len(history), "batch_size": c.BATCH_SIZE, "learning_rate": c.LEARNING_RATE,
                         "regularisation": c.REGULARISATION, "reg_strength": c.REG_STRENGTH,
                         "aux_losses": c.AUX_LOSSES, "class_weights": c.CLASS_WEIGHTS,
                         "distill_strength": c.DISTILL_STRENGTH, "train_layers": list(c.TRAIN_LAYERS), "seed": c.SEED,
                         "device": str(self.device), "seconds": round(seconds, 1),
                         "step_seconds": round(sum(r["seconds"] for r in history), 1),
                         "software": f"maxitrain {__version__}"},
            "losses": {"validation_start": start,
                       "train": [{k: v for k, v in r.items() if k != "seconds"} for r in history
                                 if r["step"] % c.VALID_STEP == 0 or r["step"] == c.STEPS]},
        })
        info = export_network(network.cpu(), c.OUTPUT_NETWORK, metadata)
        os.remove(ckpt)
        self.log(f"model directory {c.OUTPUT_NETWORK} written ({len(history)} steps, {seconds:.0f} s)")
        return info

    def log_plan(self):
        """Say what the run will do, and when validation is most of it (a short run)."""
        c = self.config
        passes = -(-c.STEPS // c.VALID_STEP) + 1  # every VALID_STEP steps, the last, and before training
        self.log(f"{c.STEPS} training step(s) of {c.BATCH_SIZE} sample(s); validation every {c.VALID_STEP} "
                 f"step(s) and at the end on {c.NVALID} sample(s)")
        # a training sample costs about three network passes (forward and backward), a
        # validation sample one; the tables and priors add a few passes at both ends
        validation, training = (passes + 3) * c.NVALID, 3 * c.STEPS * c.BATCH_SIZE
        if validation > training:
            self.log(f"most of this run is validation ({passes} validation(s) of {c.NVALID} samples for "
                     f"{c.STEPS * c.BATCH_SIZE} training samples): raise STEPS or VALID_STEP, or lower NVALID")

    def moved_classes(self):
        """Indices of the classes whose priors and thresholds a MaxiMask run re-estimates:
        FOCUS_CLASSES, or every class without them."""
        focus = [ABBREVIATIONS.index(a) for a in self.config.FOCUS_CLASSES if a != "NONE"]
        return sorted(focus) if focus else list(range(len(ABBREVIATIONS)))

    def validation_table(self, network, valid, training_priors):
        """MaxiMask's ClassMetrics on the validation batches `valid` ([(x, labels)] tensors),
        thresholds on p' corrected from `training_priors` to the default PRIORS, and the
        ScoreHistograms they come from."""
        from ..evaluation.metrics import ScoreHistograms, evaluate

        hist = ScoreHistograms()
        network.eval()
        with self.torch.no_grad():
            for x, truth in valid:
                for p, t in zip(network(x).cpu().numpy(), truth.cpu().numpy()):
                    hist.add(p, t.astype(bool))
        return evaluate(hist, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, training_priors), hist

    def validation_metadata(self, network, valid, before=None):
        """Training priors (eq. 27) and, for MaxiMask, thresholds (:func:`sky_threshold`) on the
        validation batches; `before`: the starting network's validation table, logged beside
        the new one."""
        from .priors import mean_posteriors

        inputs = (x for x, _ in valid)
        if self.name == "maxitrack":
            prior = mean_posteriors(network, inputs)
            self.log(f"training prior of a tracking error re-estimated on the validation set: {prior:.4f}")
            return {"training_priors": prior}
        priors = np.clip(mean_posteriors(network, inputs), 1e-9, 1 - 1e-9)  # eq. 27
        # a run aimed at FOCUS_CLASSES moves those only: the others keep the starting
        # network's priors and thresholds (re-estimated on a few samples, they would move
        # every class's flags)
        moved = self.moved_classes()
        kept = [k for k in range(len(ABBREVIATIONS)) if k not in moved]
        base_thresholds = self.base["thresholds"] if self.base["thresholds"] is not None else DEFAULT_THRESHOLDS
        priors[kept] = np.asarray(self.base["training_priors"], dtype=np.float64)[kept]
        table, hist = self.validation_table(network, valid, priors)
        thresholds = [float(base_thresholds[k]) if k in kept or not m.positives
                      else sky_threshold(hist, k, priors[k]) for k, m in enumerate(table)]
        if kept and moved:
            self.log(f"priors and thresholds re-estimated for {', '.join(ABBREVIATIONS[k] for k in moved)} "
                     "(FOCUS_CLASSES); the other classes keep the starting network's")
        start = {m.abbr: m for m in before or ()}
        for k, m in enumerate(table):
            if m.positives:
                was = start.get(m.abbr)
                self.log(f"validation {m.abbr:>4}: AUC {m.auc:.4f}, best MCC {m.best_mcc:.3f} on the samples"
                         + (f" (start: AUC {was.auc:.4f}, best MCC {was.best_mcc:.3f})" if was else "")
                         + (f"; threshold {thresholds[k]:.3g} (best MCC at the prior's fraction)"
                            if k in moved else ""))
        return {"training_priors": priors.tolist(), "thresholds": thresholds,
                "validation": {m.abbr: {"auc": m.auc, "best_mcc": m.best_mcc, "positives": m.positives,
                                        **({"auc_start": start[m.abbr].auc, "best_mcc_start": start[m.abbr].best_mcc}
                                           if m.abbr in start else {})}
                               for m in table if m.positives}}


class Progress:
    """Per-step reporting: a bar with the loss, samples/s and ETA on a terminal; on a log,
    a plain line at every validation step (and the last)."""

    def __init__(self, config, log, bar):
        self.config, self.log = config, log
        self.bar = None
        if bar:
            import sys

            from tqdm import tqdm

            self.bar = tqdm(total=config.STEPS, desc="training", unit="step", file=sys.stderr, dynamic_ncols=True)
        self.recent = []

    def __call__(self, record):
        c = self.config
        self.recent = (self.recent + [record["seconds"]])[-50:]
        rate = c.BATCH_SIZE * len(self.recent) / max(sum(self.recent), 1e-9)
        if self.bar is not None:
            if self.bar.n == 0 and record["step"] > 1:
                self.bar.update(record["step"] - 1)  # resumed
            self.bar.set_postfix(loss=f"{record['total']:.4g}", samples_s=f"{rate:.2f}", refresh=False)
            self.bar.update(1)
        if "valid_total" in record and (self.bar is None or c.VERBOSE_TYPE == "FULL"):
            eta = (c.STEPS - record["step"]) * c.BATCH_SIZE / rate
            self.log(f"step {record['step']}/{c.STEPS}: loss {record['total']:.6g} (main {record['main']:.4g}"
                     + (f", aux {record['aux']:.4g}" if "aux" in record else "")
                     + (f", distillation {record['distillation']:.4g}" if "distillation" in record else "")
                     + f", reg {record['regularisation']:.4g}), validation {record['valid_total']:.6g}; "
                     f"{rate:.2f} samples/s, ETA {_duration(eta)}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s" if seconds >= 3600 \
        else f"{seconds // 60}m{seconds % 60:02d}s"
