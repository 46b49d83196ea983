"""The errors a user can cause, each ``str()`` one line (naming the file or the keyword).

The commands print them on stderr and exit non-zero; Python callers catch
:class:`InputError` (which covers :class:`OutputError` and :class:`OutputExistsError`).
They are importable from ``maximask`` directly.
"""
from __future__ import annotations

__all__ = ["InputError", "OutputError", "OutputExistsError", "SkippedInput", "ConfigError"]


class InputError(Exception):
    """A problem a user can cause with an input; ``str()`` is one line naming the file."""

    def __init__(self, name: str, problem: str):
        self.name = str(name)
        self.problem = _one_line(problem)
        super().__init__(f"{self.name}: {self.problem}")


class OutputError(InputError):
    """An output cannot be written (a subclass of InputError so one ``except`` covers both)."""


class OutputExistsError(OutputError):
    """The output exists and overwriting was not asked for.

    ``str()`` speaks the API's language (``overwrite=True``); the commands say
    ``-OVERWRITE Y`` instead (:attr:`path` is the output's path).
    """

    def __init__(self, path: str):
        self.path = str(path)
        super().__init__(path, "output file already exists; pass overwrite=True "
                               "(OVERWRITE Y) to replace it")


class SkippedInput(InputError):
    """An input deliberately not processed (one of our own outputs); ``str()`` is the note."""


def _one_line(text) -> str:
    text = str(text).replace(" (note: Astropy uses zero-based indexing)", "")
    lines = [s.strip() for s in text.strip().splitlines() if s.strip()]
    return " ".join(lines) if lines else "unknown error"


def _describe(exc: BaseException) -> str:
    msg = _one_line(exc)
    if msg.startswith("No SIMPLE card found"):               # drop astropy's advice
        msg = "no SIMPLE card found"
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
    return msg if msg != "unknown error" else type(exc).__name__


class ConfigError(ValueError):
    """A configuration mistake a user can make; ``str()`` is one line.

    Attributes: ``message`` (without location), ``location`` (``"file:line"``,
    ``"command line"`` or None), ``keyword`` (or None).
    """

    def __init__(self, message, location=None, keyword=None):
        self.message = " ".join(str(message).split())  # always one line
        self.location = location
        self.keyword = keyword
        super().__init__(self.message)

    def __str__(self):
        return f"{self.location}: {self.message}" if self.location else self.message

    def at(self, location):
        """The same error, located (an existing location is kept)."""
        if self.location:
            return self
        return ConfigError(self.message, location, self.keyword)
