"""The ``maximask``, ``maxitrack``, ``maxieval`` and ``maxitrain`` commands, AstrOmatic style.

    maximask [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maximask -d | -dd | -v | -h
    maxitrack [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maxieval [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maxitrain [-c CONFIG] IMAGE... [-KEYWORD value ...]   (MaxiTrack: LABEL_LIST...)

Exit status: 0 all inputs processed (our own outputs given as inputs are skipped with a
note); 1 some inputs failed (each said in one line on stderr, the others still processed);
2 bad command line or configuration (keyword, OUTPUT_DIR, OUTPUT_NAME, DEVICE), nothing
processed; 130 interrupted (SIGINT), 143 terminated (SIGTERM): no partial output is left.
maxitrain trains on all its inputs or none: one that cannot be read is exit 2.
"""
import datetime
import json
import math
import os
import signal
import sys
import threading

from . import MODEL_VERSION, __version__
from .config import (EVAL_KEYWORDS, MASK_KEYWORDS, TRACK_KEYWORDS, TRAIN_KEYWORDS, ConfigError, dump, load_config,
                     split_argv)
from .engine import EngineError, model_info
from .fitsio import (CLEAN_FIELDS, InputError, OutputError, OutputExistsError, SkippedInput,
                     check_not_input, check_writable, file_identities, find_inputs, is_output_file,
                     plan_outputs, write_atomically)
from .progress import progress_bar, say

USAGE = """\
SYNTAX: {prog} [-c <config_file>] <image> [<image> ...] [-<keyword> <value>] ...
        images: FITS files (.fits, .fz, .gz), 'file.fits[N]' for one HDU (quoted in a
                shell), directories, @list or .list files
> to dump a default configuration file:          {prog} -d
{expert}> to print the version:                          {prog} -v
"""
EXPERT_USAGE = "> to dump a default extended configuration file: {prog} -dd\n"


class Terminated(BaseException):
    """SIGTERM arrived: unwind like an interrupt, so temporary outputs are removed."""


def _raise_terminated(signum, frame):
    raise Terminated()


def usage(spec, prog):
    """The -h text: the syntax, then every keyword with its default, one line each."""
    expert = EXPERT_USAGE.format(prog=prog) if any(kw.expert for kw in spec) else ""
    lines = [USAGE.format(prog=prog, expert=expert).rstrip("\n"), "", "Keywords (default):"]
    for kw in spec:
        default = kw.format(kw.default) or '""'
        lines.append(f"  {kw.name:<17} {default:<14} {kw.comment}")
    lines += ["", f"Details: man {prog} (the man pages are installed with the package)."]
    return "\n".join(lines) + "\n"


def run_command(spec, argv, process, prog, accept=(), strict=False):
    """Shared driver of the commands: switches, configuration, inputs, per-input errors.

    Our own outputs given as inputs are skipped, except check-images of the types `accept`.
    strict: a bad argument or list entry stops the run before any work (exit 2), instead
    of leaving the others to be processed (maxitrain: a model of part of its inputs is
    not the model asked for).

    process(config, sources, log) checks what it needs before any input is read (raising
    ConfigError or EngineError, exit 2), processes the inputs and returns the number that
    failed. SIGTERM is handled like SIGINT while it runs.
    """
    try:
        line = split_argv(argv, spec)
        if "-h" in line.switches or "--help" in line.switches:
            print(usage(spec, prog), end="")
            return 0
        if "-v" in line.switches or "--version" in line.switches:
            print(f"{prog} version {__version__} (networks: {MODEL_VERSION})")
            return 0
        if "-d" in line.switches or "-dd" in line.switches:
            print(dump(spec, expert="-dd" in line.switches), end="")
            return 0
        if not line.images:
            print(usage(spec, prog), end="", file=sys.stderr)
            return 2
        config = load_config(spec, line.config_path, line.overrides)
    except ConfigError as exc:
        say(prog, exc)
        return 2

    def log(message):
        if config.VERBOSE_TYPE != "QUIET":
            say(prog, message)

    if config.VERBOSE_TYPE == "FULL":
        log(f"configuration from {config.source}")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        errors = []  # a bad argument or list entry is reported; the others still run
        sources = find_inputs(line.images, getattr(config, "OUTPUT_SUFFIX", ".mask.fits"), errors)
        for exc in errors:
            say(prog, exc)
        if strict and errors:
            raise ConfigError(nothing_done(len(errors)))
        kept = []
        for source in sources:
            if is_output_file(source.path, accept):
                log(f"{source.name}: skipped: a maximask output, not an image to process")
            else:
                kept.append(source)
        failed = len(errors) + (process(config, kept, log) if kept else 0)
    except (ConfigError, EngineError) as exc:
        say(prog, exc)
        return 2
    except (InputError, OSError) as exc:
        say(prog, _message(exc))
        return 1
    except KeyboardInterrupt:
        say(prog, "interrupted: no partial output left")
        return 130
    except Terminated:
        say(prog, "terminated: no partial output left")
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 1 if failed else 0


def nothing_done(count):
    return f"{count} input(s) could not be read: nothing done"


def _message(exc):
    """An error's line in the commands' terms (OutputExistsError speaks the API's)."""
    if isinstance(exc, OutputExistsError):
        return f"{exc.path}: output file already exists; set -OVERWRITE Y to replace it"
    return exc


def _each_source(prog, config, sources, work, log):
    """Call work(source) for each input with a progress bar; count the inputs that failed."""
    failed = 0
    quiet = config.VERBOSE_TYPE == "QUIET"
    for source in progress_bar(sources, desc="files", unit="file", quiet=quiet or len(sources) < 2):
        try:
            work(source)
        except (InputError, EngineError) as exc:
            failed += _report_failure(prog, exc, log)
    return failed


def _report_failure(prog, exc, log):
    """Say why an input was not processed; 1 if it counts as failed, 0 for one skipped."""
    if isinstance(exc, SkippedInput):
        log(exc)
        return 0
    say(prog, _message(exc))
    return 1


def _check_output_dir(folder):
    try:
        check_writable(folder)
    except OutputError as exc:
        raise ConfigError(f"OUTPUT_DIR {folder}: {exc.problem}", keyword="OUTPUT_DIR") from None


def _mask_inputs(config, sources, log):
    from .masker import Masker

    if config.OUTPUT_DIR:
        _check_output_dir(config.OUTPUT_DIR)
    masker = Masker(config)
    on_cluster = config.CLUSTER.upper() != "NONE"
    masker.checks.check_inputs(sources)
    if not on_cluster:  # on a cluster, the workers open the network
        masker.network  # a device that cannot start is said once, before any file is read
    protect = file_identities(s.path for s in sources)
    planned, errors = plan_outputs(sources, masker.output_path, protect)
    for exc in errors:
        say("maximask", exc)

    def done(source, path):
        log(f"{source.name} -> {path}")

    if on_cluster:
        return len(errors) + _on_cluster("maximask", config, masker, planned, log, done,
                                         plan=lambda source, log: masker.plan_file(source, log, protect))
    failed = len(errors)
    quiet = config.VERBOSE_TYPE == "QUIET"
    outcomes = masker.run_files(planned, log=log, protect=protect)  # the next file read while one is written
    for source, outcome in progress_bar(outcomes, total=len(planned), desc="files", unit="file",
                                        quiet=quiet or len(planned) < 2):
        if isinstance(outcome, (InputError, EngineError)):
            failed += _report_failure("maximask", outcome, log)
        else:
            done(source, outcome)
    return failed


def _on_cluster(prog, config, pipeline, sources, log, done, plan=None):
    """Process the inputs on the Dask cluster of CLUSTER (see maximask.distributed)."""
    from .distributed import run_on_cluster

    return run_on_cluster(config, pipeline, sources, log, done,
                          lambda exc: _report_failure(prog, exc, log), plan=plan)


def main_mask(argv=None):
    """Entry point of ``maximask``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(MASK_KEYWORDS, argv, _mask_inputs, "maximask")


def mask_entry():
    sys.exit(main_mask())


def _check_output_name(path, protect):
    """OUTPUT_NAME must be creatable and never one of the inputs, whose identities are
    `protect` (ConfigError otherwise)."""
    def refuse(problem):
        return ConfigError(f"OUTPUT_NAME {path}: {problem}", keyword="OUTPUT_NAME")

    if os.path.isdir(path):
        raise refuse("is a directory")
    try:
        check_not_input(path, protect)
    except OutputError:
        raise refuse("is one of the inputs; it is never written over") from None
    try:
        check_writable(os.path.dirname(path) or ".")
    except OutputError as exc:
        raise refuse(exc.problem) from None


def _track_inputs(config, sources, log):
    from .tracker import Tracker

    protect = file_identities(s.path for s in sources)
    _check_output_name(config.OUTPUT_NAME, protect)
    tracker = Tracker(config)
    on_cluster = config.CLUSTER.upper() != "NONE"
    if not on_cluster:  # on a cluster, the workers open the network
        tracker.network  # a device that cannot start is said once, before any file is read
    scores = {}

    def done(source, entries):
        scores[source] = entries
        for entry in entries:
            if config.VERBOSE_TYPE == "FULL":
                for name, score in entry.hdus:
                    log(f"{name}: {score:.6f}")
            log(f"{entry.name}: {entry.score:.6f}")

    if on_cluster:
        failed = _on_cluster("maxitrack", config, tracker, sources, log, done)
    else:
        failed = _each_source("maxitrack", config, sources,
                              lambda source: done(source, tracker.score_file(source, log=log)), log)
    write_track_output(config, [entry for source in sources for entry in scores.get(source, ())],
                       protect=protect)
    return failed


def write_track_output(config, results, protect=frozenset()):
    """Write the scores to OUTPUT_NAME (a temporary name, renamed when complete)."""
    from .tracker import MIN_SIDE

    path = config.OUTPUT_NAME
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    info = model_info("maxitrack", config.NETWORK)
    model, digest = info["label"], info["weights_sha256"]

    def value(score):  # no score (image too small): null in JSON, nan in text
        return score if math.isfinite(score) else None

    if config.OUTPUT_TYPE == "JSON":
        text = json.dumps({
            "software": f"maxitrack {__version__}", "networks": model, "weights_sha256": digest,
            "date": created,
            "prior": config.PRIOR, "frac": config.FRAC, "seed": config.SEED,
            "min_side": MIN_SIDE,
            "scores": [{"file": r.name, "score": value(r.score),
                        "hdus": [{"hdu": n, "score": value(s)} for n, s in r.hdus]} for r in results],
        }, indent=1, allow_nan=False) + "\n"
    else:
        lines = [f"# maxitrack {__version__} ({model} networks, weights SHA-256 {digest[:16]}), {created} UTC",
                 f"# PRIOR {config.PRIOR:g}  FRAC {config.FRAC:g}  SEED {config.SEED}",
                 "#   1 FILE     Input file; file[hdu][plane] for a plane of a cube",
                 "#   2 SCORE    Probability of a tracking error (prior-corrected, mean over tiles);",
                 f"#              nan: no image with both sides >= {MIN_SIDE} px, no score"]
        lines += [f"{r.name} {r.score:.6f}" for r in results]
        text = "\n".join(lines) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    write_atomically(path, write, protect=protect)


def main_track(argv=None):
    """Entry point of ``maxitrack``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(TRACK_KEYWORDS, argv, _track_inputs, "maxitrack")


def track_entry():
    sys.exit(main_track())


def _eval_inputs(config, sources, log):
    from .maxieval import Evaluation, check_outputs, finish

    protect = file_identities(s.path for s in sources)
    check_outputs(config, protect)
    evaluation = Evaluation(config, log, protect)
    evaluation.masker.network  # a device or NETWORK that cannot start: said once, exit 2

    def work(source):
        before = len(evaluation.images)
        evaluation.run_file(source)
        done = evaluation.images[before:]
        log(f"{source.name}: {sum(n for _, _, n, _ in done)} samples from {len(done)} image(s)")

    failed = _each_source("maxieval", config, sources, work, log)
    if evaluation.images:
        finish(evaluation)
    return failed


def main_eval(argv=None):
    """Entry point of ``maxieval``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(EVAL_KEYWORDS, argv, _eval_inputs, "maxieval", accept=CLEAN_FIELDS)


def eval_entry():
    sys.exit(main_eval())


def _train_inputs(config, sources, log):
    from .maxitrain import Training, check_outputs, read_labels

    protect = file_identities(s.path for s in sources)
    check_outputs(config, protect)
    training = Training(config, log)
    failed = 0
    if config.TRAIN_NETWORK == "MAXITRACK":  # the inputs are lists of 'file label' lines
        errors, pairs = [], []
        for source in sources:
            pairs += read_labels(source.path, errors)
        for exc in errors:
            say("maxitrain", exc)
        failed += len(errors)
        labels = dict(pairs)
        failed += _each_source("maxitrain", config, list(labels),
                               lambda source: training.add_file(source, labels[source]), log)
    else:
        failed += _each_source("maxitrain", config, sources, training.add_file, log)
    if failed:  # a model trained on part of what was asked is not what was asked
        raise ConfigError(nothing_done(failed))
    training.run()
    return 0


def main_train(argv=None):
    """Entry point of ``maxitrain``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(TRAIN_KEYWORDS, argv, _train_inputs, "maxitrain", accept=CLEAN_FIELDS, strict=True)


def train_entry():
    sys.exit(main_train())


if __name__ == "__main__":
    mask_entry()
