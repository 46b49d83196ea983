"""The ``maximask`` and ``maxitrack`` commands, AstrOmatic style.

    maximask [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maximask -d | -dd | -v | -h
    maxitrack [-c CONFIG] IMAGE... [-KEYWORD value ...]

Exit status: 0 all inputs masked; 1 some inputs failed (each said in one line on stderr,
the others still processed); 2 bad command line or configuration, nothing processed.
"""
import datetime
import json
import os
import sys

from . import MODEL_VERSION, __version__
from .config import MASK_KEYWORDS, TRACK_KEYWORDS, ConfigError, dump, load_config, split_argv
from .engine import EngineError
from .fitsio import InputError, find_inputs, write_atomically

USAGE = """\
SYNTAX: {prog} [-c <config_file>] <image> [<image> ...] [-<keyword> <value>] ...
        images: FITS files (.fits, .fz, .gz), file.fits[N] for one HDU, directories,
                @list or .list files
> to dump a default configuration file:          {prog} -d
> to dump a default extended configuration file: {prog} -dd
> to print the version:                          {prog} -v
"""


def _say(prog, message):
    print(f"{prog}: {message}", file=sys.stderr)


def run_command(spec, argv, process, prog):
    """Shared driver of the commands: switches, configuration, inputs, per-input errors.

    process(config, sources, log) processes the inputs and returns the number that failed.
    """
    try:
        line = split_argv(argv, spec)
        if "-h" in line.switches or "--help" in line.switches:
            print(USAGE.format(prog=prog), end="")
            return 0
        if "-v" in line.switches or "--version" in line.switches:
            print(f"{prog} version {__version__} (networks: {MODEL_VERSION})")
            return 0
        if "-d" in line.switches or "-dd" in line.switches:
            print(dump(spec, expert="-dd" in line.switches), end="")
            return 0
        if not line.images:
            print(USAGE.format(prog=prog), end="", file=sys.stderr)
            return 2
        config = load_config(spec, line.config_path, line.overrides)
    except ConfigError as exc:
        _say(prog, exc)
        return 2

    def log(message):
        if config.VERBOSE_TYPE != "QUIET":
            _say(prog, message)

    log(f"configuration from {config.source}")
    suffix = getattr(config, "OUTPUT_SUFFIX", ".mask.fits")
    sources, failed = [], 0
    for arg in line.images:  # a bad argument is reported; the others still run
        try:
            sources.extend(find_inputs([arg], suffix))
        except InputError as exc:
            _say(prog, exc)
            failed += 1
    try:
        if sources:
            failed += process(config, sources, log)
    except (InputError, OSError) as exc:
        _say(prog, exc)
        return 1
    except (EngineError, ConfigError) as exc:
        _say(prog, exc)
        return 2
    except KeyboardInterrupt:
        _say(prog, "interrupted")
        return 130
    return 1 if failed else 0


def _each_source(prog, config, sources, work):
    """Call work(source) for each input with a progress bar; count the inputs that failed."""
    from tqdm import tqdm

    failed = 0
    quiet = config.VERBOSE_TYPE == "QUIET"
    for source in tqdm(sources, desc="files", unit="file", disable=quiet or len(sources) < 2):
        try:
            work(source)
        except (InputError, EngineError) as exc:
            _say(prog, exc)
            failed += 1
    return failed


def _mask_inputs(config, sources, log):
    from .masker import Masker

    if config.OUTPUT_DIR and not os.path.isdir(config.OUTPUT_DIR):
        raise InputError(config.OUTPUT_DIR, "OUTPUT_DIR is not a directory")
    masker = Masker(config)
    masker.checks.check_inputs(sources)

    def work(source):
        log(f"{source.name} -> {masker.run_file(source, log=log)}")

    return _each_source("maximask", config, sources, work)


def main_mask(argv=None):
    """Entry point of ``maximask``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(MASK_KEYWORDS, argv, _mask_inputs, "maximask")


def mask_entry():
    sys.exit(main_mask())


def _track_inputs(config, sources, log):
    from .tracker import Tracker

    tracker = Tracker(config)
    results = []

    def work(source):
        for entry in tracker.score_file(source, log=log):
            results.append(entry)
            if config.VERBOSE_TYPE == "FULL":
                for name, score in entry.hdus:
                    log(f"{name}: {score:.6f}")
            log(f"{entry.name}: {entry.score:.6f}")

    failed = _each_source("maxitrack", config, sources, work)
    write_track_output(config, results)
    return failed


def write_track_output(config, results):
    """Write the scores to OUTPUT_NAME (a temporary name, renamed when complete)."""
    path = config.OUTPUT_NAME
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if config.OUTPUT_TYPE == "JSON":
        text = json.dumps({
            "software": f"maxitrack {__version__}", "networks": MODEL_VERSION, "date": created,
            "prior": config.PRIOR, "frac": config.FRAC, "seed": config.SEED,
            "scores": [{"file": r.name, "score": r.score,
                        "hdus": [{"hdu": n, "score": s} for n, s in r.hdus]} for r in results],
        }, indent=1) + "\n"
    else:
        lines = [f"# maxitrack {__version__} ({MODEL_VERSION} networks), {created} UTC",
                 f"# PRIOR {config.PRIOR:g}  FRAC {config.FRAC:g}  SEED {config.SEED}",
                 "#   1 FILE     Input file; file[hdu][plane] for a plane of a cube",
                 "#   2 SCORE    Probability of a tracking error (prior-corrected, mean over tiles)"]
        lines += [f"{r.name} {r.score:.6f}" for r in results]
        text = "\n".join(lines) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    write_atomically(path, write)


def main_track(argv=None):
    """Entry point of ``maxitrack``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(TRACK_KEYWORDS, argv, _track_inputs, "maxitrack")


def track_entry():
    sys.exit(main_track())


if __name__ == "__main__":
    mask_entry()
