"""Progress and messages of the commands: bars on a terminal, plain lines in a log.

A bar drawn into a log file fills it with carriage-return fragments, so bars are shown
only when stderr is a terminal; messages go through tqdm.write there, so that a line is
never glued to a bar. Everything goes to stderr; stdout stays for -d and -h.
"""
import sys

from tqdm import tqdm


def on_terminal():
    """True when stderr is a terminal (bars are drawn only then)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable, total=None, desc=None, unit="it", leave=True, quiet=False):
    """`iterable` wrapped in a tqdm bar on a terminal; `iterable` itself otherwise or if quiet."""
    if quiet or not on_terminal():
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                dynamic_ncols=True)


def say(prog, message):
    """One line ``prog: message`` on stderr, above any bar being drawn."""
    line = f"{prog}: {message}"
    if on_terminal():
        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_counter(total, desc=None, unit="it", leave=False, quiet=False):
    """A tqdm bar updated by hand (update(n), close()) on a terminal; a silent stand-in
    otherwise or if quiet."""
    if quiet or not on_terminal():
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)
