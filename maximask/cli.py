"""The ``maximask`` command, AstrOmatic style.

    maximask [-c CONFIG] IMAGE... [-KEYWORD value ...]
    maximask -d | -dd | -v | -h

Exit status: 0 all inputs masked; 1 some inputs failed (each said in one line on stderr,
the others still processed); 2 bad command line or configuration, nothing processed.
"""
import os
import sys

from . import MODEL_VERSION, __version__
from .config import MASK_KEYWORDS, ConfigError, dump, load_config, split_argv
from .engine import EngineError
from .fitsio import InputError, find_inputs

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
    except EngineError as exc:
        _say(prog, exc)
        return 2
    except KeyboardInterrupt:
        _say(prog, "interrupted")
        return 130
    return 1 if failed else 0


def _mask_inputs(config, sources, log):
    from tqdm import tqdm

    from .masker import Masker

    if config.OUTPUT_DIR and not os.path.isdir(config.OUTPUT_DIR):
        raise InputError(config.OUTPUT_DIR, "OUTPUT_DIR is not a directory")
    masker = Masker(config)
    failed = 0
    quiet = config.VERBOSE_TYPE == "QUIET"
    for source in tqdm(sources, desc="files", unit="file", disable=quiet or len(sources) < 2):
        try:
            path = masker.run_file(source, log=log)
        except (InputError, EngineError) as exc:
            _say("maximask", exc)
            failed += 1
        else:
            log(f"{source.name} -> {path}")
    return failed


def main_mask(argv=None):
    """Entry point of ``maximask``."""
    argv = sys.argv[1:] if argv is None else argv
    return run_command(MASK_KEYWORDS, argv, _mask_inputs, "maximask")


def mask_entry():
    sys.exit(main_mask())


if __name__ == "__main__":
    mask_entry()
