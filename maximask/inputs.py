"""Input discovery: which images a command line names, as SExtractor or SWarp take them.

* ``image.fits`` (also ``.fit``, ``.fts``, tile-compressed ``.fz`` and gzipped ``.gz``);
  a file named explicitly is accepted whatever its extension and checked when read;
* ``image.fits[N]``: HDU ``N`` only (0-based, as astropy and CFITSIO count);
* a directory: the FITS files directly inside it, sorted by name, leaving out our own
  outputs (names containing the output suffix, or its ``x.mask3.fits`` per-HDU form) and
  hidden files (where unfinished outputs live);
* ``@names`` or ``names.list``: a text file with one argument a line (file, ``file[N]``,
  directory or another list); blank lines and lines starting with ``#`` are skipped;
  relative paths are taken relative to the current directory, as SExtractor does, not to
  the list's directory.

A file that is one of our outputs (:func:`is_output_file`) is not an input.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
import warnings
from typing import Iterable

from astropy.io import fits

from .errors import InputError, _describe

__all__ = ["ImageSource", "find_inputs", "is_fits_name", "is_marked", "is_output_file", "DEFAULT_SUFFIX",
           "OUTPUT_MARK", "CLEAN_FIELDS"]


#: Output suffix of MaxiMask (``x.fits`` -> ``x.mask.fits``).
DEFAULT_SUFFIX = ".mask.fits"


#: The card every maximask output image HDU carries: a file with it is never an input.
OUTPUT_MARK = "MM_VERS"


#: Check-images that maxieval and maxitrain take as clean inputs (see is_marked).
CLEAN_FIELDS = ("CLEANED",)


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """One image argument resolved: a file, and the HDU to process (None: all of them)."""

    path: str
    hdu: int | None = None
    #: What messages call it: the path as given, with ``[N]`` when an HDU is selected.
    name: str = ""

    def __post_init__(self):
        if not self.name:
            label = self.path if self.hdu is None else f"{self.path}[{self.hdu}]"
            object.__setattr__(self, "name", label)


_HDU_SELECTOR = re.compile(r"^(?P<path>.+)\[(?P<sel>[^\[\]]*)\]$")


_FITS_NAME = re.compile(r"(\.(fits|fit|fts)(\.fz)?|\.fz)(\.gz)?$", re.IGNORECASE)


_FITS_ENDINGS = re.compile(r"(\.(fits|fit|fts))?(\.fz)?(\.gz)?$", re.IGNORECASE)


def is_fits_name(filename: str) -> bool:
    """True for names a directory scan takes as FITS: .fits/.fit/.fts, .fz and .gz of those."""
    return bool(_FITS_NAME.search(filename))


def _is_output_name(filename: str, suffix: str) -> bool:
    low, suf = filename.lower(), suffix.lower()
    if suf and suf in low:
        return True
    if suf.endswith(".fits") and len(suf) > 5:         # per-HDU outputs: x.mask3.fits
        return re.search(re.escape(suf[:-5]) + r"\d+\.fits$", low) is not None
    return False


def _not_a_file(path: str, missing: str) -> str:
    """Why `path` is not a regular file one can read: `missing` when nothing is there, else
    what is there (a symbolic link loop or a broken link, a FIFO, a device...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop, not a file"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"a broken symbolic link (to {os.readlink(path)}, which does not exist)"
        return missing if exc.errno == errno.ENOENT else _describe(exc)
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return f"not a regular file: {what}"
    return missing


def find_inputs(args: Iterable[str], suffix: str = DEFAULT_SUFFIX,
                errors: list | None = None) -> list[ImageSource]:
    """Resolve command-line image arguments into the images to process, in order.

    Duplicates (the same file, by real path, and HDU reached twice: ``x.fits x.fits``,
    ``x.fits ./x.fits``, a file listed and also given) are kept once, at their first place.
    A missing file, a directory without FITS files, an unreadable or empty list or a
    malformed ``[N]`` raises InputError; with an `errors` list, each such problem is
    appended there instead and the other arguments (and the other entries of a list) are
    still resolved. FITS files are not opened here.
    """
    found: list[ImageSource] = []
    seen: set = set()
    problems = [] if errors is None else errors
    for arg in args:
        for src in _resolve(str(arg), suffix, frozenset(), "", problems):
            key = (os.path.realpath(src.path), src.hdu)
            if key not in seen:
                seen.add(key)
                found.append(src)
        if errors is None and problems:
            raise problems[0]
    return found


def _resolve(arg: str, suffix: str, lists: frozenset, origin: str,
             errors: list) -> list[ImageSource]:
    """The images `arg` names; a problem is appended to `errors` (an empty result)."""
    where = f" ({origin})" if origin else ""
    try:
        if arg.startswith("@"):
            return _read_list(arg[1:], suffix, lists, where, errors)
        if os.path.isdir(arg):
            return _scan_dir(arg, suffix, where)
        if os.path.isfile(arg):
            if arg.lower().endswith(".list"):
                return _read_list(arg, suffix, lists, where, errors)
            return [ImageSource(arg)]
        m = _HDU_SELECTOR.match(arg)
        if m:
            path, sel = m.group("path"), m.group("sel").strip()
            if not re.fullmatch(r"\d+", sel):
                raise InputError(arg + where,
                                 f"HDU selector [{sel}] is not a non-negative integer index")
            if os.path.isdir(path):
                raise InputError(arg + where, "an HDU index applies to a file, not a directory")
            if not os.path.isfile(path):
                raise InputError(path + where, _not_a_file(path, "no such file"))
            return [ImageSource(path, int(sel))]
        if arg.lower().endswith(".list"):
            raise InputError(arg + where, _not_a_file(arg, "no such list file"))
        raise InputError(arg + where, _not_a_file(arg, "no such file or directory"))
    except InputError as exc:
        errors.append(exc)
        return []


def _read_list(path: str, suffix: str, lists: frozenset, where: str,
               errors: list) -> list[ImageSource]:
    real = os.path.realpath(path)
    if real in lists:
        raise InputError(path + where, "list includes itself")
    if not os.path.isfile(path):  # a FIFO would block the read
        raise InputError(path + where, _not_a_file(path, "no such list file"))
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError(path + where, "no such list file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path + where, f"cannot read list: {_describe(exc)}") from None
    out: list[ImageSource] = []
    entries = 0
    for lineno, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entries += 1
        out += _resolve(entry, suffix, lists | {real}, f"listed in {path} line {lineno}", errors)
    if not entries:
        raise InputError(path + where, "list names no image")
    return out


def _scan_dir(path: str, suffix: str, where: str) -> list[ImageSource]:
    try:
        names = sorted(e.name for e in os.scandir(path) if e.is_file())
    except OSError as exc:
        raise InputError(path + where, f"cannot read directory: {_describe(exc)}") from None
    keep = [n for n in names
            if is_fits_name(n) and not n.startswith(".") and not _is_output_name(n, suffix)]
    if not keep:
        raise InputError(path + where, "no FITS files in directory")
    return [ImageSource(os.path.join(path, n)) for n in keep]


def is_marked(header, accept=()) -> bool:
    """True if `header` carries :data:`OUTPUT_MARK` (one of our outputs), unless it is a
    check-image whose MM_CHECK type is in `accept` (e.g. ``("CLEANED",)``: a cleaned
    image is a fine clean field for maxieval and maxitrain)."""
    return OUTPUT_MARK in header and header.get("MM_CHECK") not in accept


def is_output_file(path: str, accept=()) -> bool:
    """True if `path` is a FITS file one of whose headers carries :data:`OUTPUT_MARK`
    (check-images of the types `accept` excepted, see is_marked).

    Only headers are read; a file that cannot be read is not called an output (reading it
    as an input then says what is wrong with it).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, mode="readonly", lazy_load_hdus=True) as hdul:
                return any(is_marked(hdu.header, accept) for hdu in hdul)
    except Exception:                                                 # noqa: BLE001
        return False
