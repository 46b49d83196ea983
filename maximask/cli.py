"""The ``maximask``, ``maxitrack``, ``maxieval`` and ``maxitrain`` commands, AstrOmatic style.

    maximask [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maximask -d | -dd | -v | -h
    maxitrack [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maxieval [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maxitrain [-c CONFIG] IMAGE... [-KEYWORD value ...]   (MaxiTrack: LABEL_LIST...)

Exit status, one rule for the four commands (decided by exit_status):

    0    every input got all its outputs (our own outputs given as inputs are skipped
         with a note: they are not inputs to process);
    2    the run stopped before any work on a problem of the whole run, nothing done: the
         command line or configuration (keyword, file, NETWORK, DEVICE), or an output found
         unusable before any input was read (an output that exists without OVERWRITE,
         OUTPUT_DIR / OUTPUT_NAME / SAMPLES_DIR missing, a file or not writable, a missing
         DARK_FRAMES file, an existing OUTPUT_NETWORK or an unreadable checkpoint);
    1    some inputs did not get their outputs (each said in one line on stderr: unreadable,
         its output exists without OVERWRITE or is another input's, a failure while it
         ran), the others were processed; or the run failed while writing what it had done;
    130  interrupted (SIGINT), 143 terminated (SIGTERM): no partial output is left (the
         sample files of an interrupted maxieval are removed; an interrupted maxitrain
         keeps its checkpoint, said on stderr, to resume).

maxitrain trains on all its inputs or none: one that cannot be read is exit 2.
"""
import os
import signal
import sys
import threading

from . import MODEL_VERSION, __version__
from .config import ConfigError, dump, load_config, split_argv
from .engine import EngineError
from .errors import InputError, OutputError, OutputExistsError, SkippedInput
from .inputs import CLEAN_FIELDS, find_inputs, is_output_file
from .keywords import EVAL_KEYWORDS, MASK_KEYWORDS, TRACK_KEYWORDS, TRAIN_KEYWORDS
from .outputs import check_not_input, check_writable, file_identities, plan_outputs, remove_own_temporaries
from ._progress import progress_bar, say

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


class Preflight(ConfigError):
    """A problem of the whole run found before any input was read (exit 2), such as an
    output that exists without OVERWRITE or cannot be created."""


def preflight(check, *args):
    """Run a command's check of its run-wide outputs before any input is read: the one
    pre-flight rule of the four commands. Any problem it finds (InputError, OutputError,
    ConfigError) is the run's :class:`Preflight` error: one line, exit 2, nothing done."""
    try:
        return check(*args)
    except InputError as exc:
        raise Preflight(_message(exc)) from None


def exit_status(failed=0, exc=None):
    """The exit status of a command (see the module docstring): `failed` inputs did not get
    their outputs; `exc` is what ended the run early, if anything."""
    if exc is None:
        return 1 if failed else 0
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, Terminated):
        return 143
    if isinstance(exc, (ConfigError, EngineError)):  # before any work, nothing done
        return 2
    return 1  # an error while writing what was done


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

    process(config, sources, log, protect) checks its run's outputs before any input is read
    (through :func:`preflight`: exit 2, nothing done), processes the inputs and returns the
    number that failed; protect: the inputs' identities, never written over. SIGTERM is
    handled like SIGINT while it runs.
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

    if config.VERBOSE_TYPE == "FULL":  # an error run stays one line at NORMAL
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
        protect = file_identities(s.path for s in kept)  # never written over, whatever OVERWRITE says
        failed = len(errors) + (process(config, kept, log, protect) if kept else 0)
    except (ConfigError, EngineError) as exc:
        say(prog, exc)
        return exit_status(exc=exc)
    except (InputError, OSError) as exc:
        say(prog, _message(exc))
        return exit_status(exc=exc)
    except (KeyboardInterrupt, Terminated) as exc:
        remove_own_temporaries()  # the signal may have landed inside a cleanup
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        say(prog, f"{what}: {getattr(exc, 'kept', None) or 'no partial output left'}")
        return exit_status(exc=exc)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return exit_status(failed)


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
    """OUTPUT_DIR ("" = beside each input) must be a directory that takes files."""
    if not folder:
        return
    try:
        check_writable(folder)
    except OutputError as exc:
        raise ConfigError(f"OUTPUT_DIR {folder}: {exc.problem}", keyword="OUTPUT_DIR") from None


def _mask_inputs(config, sources, log, protect):
    from .masker import Masker

    preflight(_check_output_dir, config.OUTPUT_DIR)
    masker = Masker(config)
    _say_model_thresholds(masker.config, log)
    on_cluster = config.CLUSTER.upper() != "NONE"
    masker.checks.check_inputs(sources)
    if not on_cluster:  # on a cluster, the workers open the network
        masker.network  # a device that cannot start is said once, before any file is read
    planned, errors = plan_outputs(sources, masker.output_path, protect)  # per input: exit 1
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


def _say_model_thresholds(config, log):
    """One line when THRESHOLDS come from NETWORK's model.json (engine.with_model_thresholds):
    the classes whose thresholds there differ from the published ones."""
    from .classes import ABBREVIATIONS, DEFAULT_THRESHOLDS
    from .engine import MODEL_INFO_FILE

    if not config.NETWORK or config.origin("THRESHOLDS") != MODEL_INFO_FILE:
        return
    moved = [a for a, t, d in zip(ABBREVIATIONS, config.THRESHOLDS, DEFAULT_THRESHOLDS) if t != d]
    log(f"thresholds from {os.path.join(config.NETWORK, MODEL_INFO_FILE)}: "
        + (f"{', '.join(moved)} differ from the published ones, the other classes keep theirs" if moved
           else "the published ones for every class"))


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


def _check_output_name(path, protect, overwrite=False):
    """OUTPUT_NAME must be creatable, never one of the inputs, whose identities are
    `protect`, and absent unless `overwrite` (ConfigError otherwise)."""
    def refuse(problem):
        return ConfigError(f"OUTPUT_NAME {path}: {problem}", keyword="OUTPUT_NAME")

    if os.path.isdir(path):
        raise refuse("is a directory")
    try:
        check_not_input(path, protect)
    except OutputError:
        raise refuse("is one of the inputs; it is never written over") from None
    if os.path.lexists(path) and not overwrite:
        raise refuse("output file already exists; set -OVERWRITE Y to replace it")
    try:
        check_writable(os.path.dirname(path) or ".")
    except OutputError as exc:
        raise refuse(exc.problem) from None


def _track_inputs(config, sources, log, protect):
    from .tracker import Tracker, write_track_output

    preflight(_check_output_name, config.OUTPUT_NAME, protect, config.OVERWRITE)
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


def main_track(argv=None):
    """Entry point of ``maxitrack``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(TRACK_KEYWORDS, argv, _track_inputs, "maxitrack")


def track_entry():
    sys.exit(main_track())


def _eval_inputs(config, sources, log, protect):
    from .evaluation.pipeline import Evaluation, check_outputs, finish

    def prepare():
        check_outputs(config, protect)
        return Evaluation(config, log, protect)  # reads DARK_FRAMES

    evaluation = preflight(prepare)
    evaluation.masker.network  # a device or NETWORK that cannot start: said once, exit 2
    _say_model_thresholds(evaluation.config, log)

    def work(source):
        before = len(evaluation.images)
        evaluation.run_file(source)
        done = evaluation.images[before:]
        log(f"{source.name}: {sum(n for _, _, n, _ in done)} samples from {len(done)} image(s)")

    try:
        failed = _each_source("maxieval", config, sources, work, log)
        if evaluation.images:
            finish(evaluation)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt: leave no sample of this run
            evaluation.remove_samples()
        raise
    return failed


def main_eval(argv=None):
    """Entry point of ``maxieval``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(EVAL_KEYWORDS, argv, _eval_inputs, "maxieval", accept=CLEAN_FIELDS)


def eval_entry():
    sys.exit(main_eval())


def _train_inputs(config, sources, log, protect):
    from .training.pipeline import Training, check_outputs, read_labels

    preflight(check_outputs, config, protect)
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
    try:
        training.run()
    except BaseException as exc:
        kept = training.checkpoint
        if not isinstance(exc, Exception) and os.path.exists(kept):
            exc.kept = f"checkpoint {kept} kept: run the same command again to resume from it"
        raise
    return 0


def main_train(argv=None):
    """Entry point of ``maxitrain``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(TRAIN_KEYWORDS, argv, _train_inputs, "maxitrain", accept=CLEAN_FIELDS, strict=True)


def train_entry():
    sys.exit(main_train())


if __name__ == "__main__":
    mask_entry()
