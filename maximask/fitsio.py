"""FITS input and output: finding the images to process, reading their HDUs, writing masks.

One concern: everything that touches a FITS file goes through here, so the pipelines see
only ``float32`` planes and headers, and every problem a user can cause surfaces as an
:class:`InputError` whose ``str()`` is one line naming the file (the CLI prints it on stderr
and exits non-zero).

Inputs (:func:`find_inputs`), as on the command line of SExtractor or SWarp:

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

Inputs are never modified: files are opened read-only.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import mmap
import os
import re
import shutil
import socket
import stat
import tempfile
import warnings
from typing import Iterable, Iterator, Sequence

import numpy as np
from astropy.io import fits

__all__ = [
    "InputError", "OutputError", "OutputExistsError", "SkippedInput", "ImageSource", "ImageHDUData",
    "FitsImage", "find_inputs", "open_image", "read_image_hdus", "check_data",
    "output_path", "output_header", "write_hdus", "is_fits_name", "DEFAULT_SUFFIX",
    "METADATA_KEYWORDS", "OUTPUT_MARK", "file_identities", "check_not_input", "check_writable",
    "write_atomically", "temporary_path", "temporary_output", "remove_stale_temporaries",
    "is_output_file",
    "plan_outputs", "PLACEHOLDER_CARD", "empty_output",
]

#: Output suffix of MaxiMask (``x.fits`` -> ``x.mask.fits``).
DEFAULT_SUFFIX = ".mask.fits"

#: Keywords copied from an input header to its mask besides the WCS (when present).
METADATA_KEYWORDS = (
    "EXTNAME", "EXTVER", "OBJECT", "DATE-OBS", "MJD-OBS", "TIMESYS", "EXPTIME", "FILTER",
    "INSTRUME", "TELESCOP", "DETECTOR", "CCDNAME", "CCDNUM",
)

#: HDU kinds reported by :class:`ImageHDUData` and accepted by :func:`write_hdus`.
IMAGE_KINDS = ("primary", "image", "compressed")


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

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


#: The card every maximask output image HDU carries: a file with it is never an input.
OUTPUT_MARK = "MM_VERS"
#: Check-images that maxieval and maxitrain take as clean inputs (see is_marked).
CLEAN_FIELDS = ("CLEANED",)


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


# --------------------------------------------------------------------------------------
# Input discovery
# --------------------------------------------------------------------------------------

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


def plan_outputs(sources: Sequence[ImageSource], name_output, protect: frozenset):
    """Check the output of each input before any is processed.

    name_output(source) gives an output path (it may raise OutputError). An input fails
    here when its output would be any input of the run (`protect`), the output of an
    earlier input, or in a directory where no file can be created. Returns
    ``(planned, errors)``: the sources whose output is fine, and InputErrors, in input order.
    """
    planned, errors, taken, folders = [], [], {}, {}
    for source in sources:
        try:
            path = name_output(source)
            try:
                check_not_input(path, protect)
            except OutputError:
                raise OutputError(source.name, f"its output {path} is an input of this run: an "
                                               "output never replaces an input, whatever "
                                               "OVERWRITE says (change OUTPUT_SUFFIX or "
                                               "OUTPUT_DIR)") from None
            key = os.path.realpath(path)
            if key in taken:
                raise OutputError(source.name, f"its output {path} is also the output of "
                                               f"{taken[key]}; not processed")
            folder = os.path.dirname(path) or "."
            if folder not in folders:
                try:
                    check_writable(folder)
                    folders[folder] = None
                except OutputError as exc:
                    folders[folder] = exc
            if folders[folder] is not None:
                raise OutputError(source.name, f"output {path}: {folders[folder].problem}")
            taken[key] = source.name
            planned.append(source)
        except InputError as exc:
            errors.append(exc)
    return planned, errors


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class ImageHDUData:
    """One HDU of an input file, in file order.

    ``maskable`` HDUs are image HDUs with numeric 2-D or 3-D data; ``data`` is then their
    pixels as native, C-contiguous float32 (BSCALE/BZERO applied, BLANK as NaN) once read,
    and None for the others (``reason`` says why they are not masked).
    """

    index: int                      # 0-based position in the file
    kind: str                       # "primary", "image", "compressed", "table" or "other"
    header: fits.Header             # for compressed HDUs, the image header
    shape: tuple                    # numpy order: (h, w) or (n, h, w); () without data
    bitpix: int | None              # the image's BITPIX, None for non-image HDUs
    maskable: bool
    reason: str = ""                # why not maskable ("" when maskable)
    data: np.ndarray | None = None
    name: str = ""                  # "file[index]" for messages

    @property
    def extname(self) -> str:
        return str(self.header.get("EXTNAME", "")).strip()


class FitsImage:
    """An input file opened read-only: its HDUs' descriptions, pixels read on demand.

    Use through :func:`open_image`; ``hdus`` lists every HDU (or only the selected one for
    ``file[N]``), and :meth:`read` returns one HDU with its float32 data.
    """

    def __init__(self, source: ImageSource, hdul: fits.HDUList, hdus: list[ImageHDUData]):
        self.source = source
        self.path = source.path
        self.name = source.name
        self._hdul = hdul
        self.hdus = hdus

    @property
    def maskable(self) -> list[ImageHDUData]:
        return [h for h in self.hdus if h.maskable]

    @property
    def skipped(self) -> list[ImageHDUData]:
        """HDUs that will not be masked: tables, empty primaries, 1-D or >3-D images."""
        return [h for h in self.hdus if not h.maskable]

    def read(self, hdu: ImageHDUData | int) -> ImageHDUData:
        """The HDU (an entry of ``hdus`` or its file index) with ``data`` read as float32.

        Returns a new ImageHDUData: the entries of ``hdus`` keep ``data=None``, so an open
        file never holds more than the pixels the caller keeps.

        Reading all the data is how truncated or corrupt files are found: any failure
        raises InputError naming the HDU.
        """
        info = hdu if isinstance(hdu, ImageHDUData) else self._by_index(hdu)
        if not info.maskable or info.data is not None:
            return info
        return dataclasses.replace(info, data=self._load(info))

    def _by_index(self, index: int) -> ImageHDUData:
        for h in self.hdus:
            if h.index == index:
                return h
        raise IndexError(f"{self.name}: HDU {index} not opened")

    def _load(self, info: ImageHDUData) -> np.ndarray:
        try:
            with _warnings_as_errors(info.name):
                raw = self._hdul[info.index].data
                if raw is None:
                    raise InputError(info.name, "image HDU has no data")
                if raw.shape != info.shape:
                    raise InputError(info.name, f"data shape {raw.shape} does not match "
                                                f"the header's {info.shape} (truncated?)")
                if not np.issubdtype(raw.dtype, np.number):
                    raise InputError(info.name, f"non-numeric data ({raw.dtype})")
                data = np.ascontiguousarray(raw, dtype=np.float32)
                if data is raw and (_file_backed(raw) or not data.flags.writeable):
                    data = data.copy()                  # never hand out a view of the file
                del raw
                with contextlib.suppress(Exception):    # drop astropy's cached copy
                    del self._hdul[info.index].data
        except InputError:
            raise
        except MemoryError:
            raise
        except Exception as exc:                                      # noqa: BLE001
            raise InputError(info.name,
                             f"cannot read data (truncated or corrupt?): {_describe(exc)}") \
                from None
        return data


def _file_backed(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap) or isinstance(a, mmap.mmap):
            return True
        a = getattr(a, "base", None)
    return False


_BAD_WARNING = re.compile(r"truncat|corrupt|extra bytes|missing END|unparsable", re.IGNORECASE)


@contextlib.contextmanager
def _warnings_as_errors(name: str):
    """Turn astropy's 'truncated'/'corrupt' warnings into InputError; pass the others on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        if _BAD_WARNING.search(text):
            raise InputError(name, f"truncated or corrupt FITS file: {_one_line(text)}")
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn(f"{name}: {_one_line(w.message)}", w.category, stacklevel=3)


def _kind(hdu) -> str:
    if isinstance(hdu, fits.CompImageHDU):
        return "compressed"
    if isinstance(hdu, fits.GroupsHDU):
        return "other"
    if isinstance(hdu, fits.PrimaryHDU):
        return "primary"
    if isinstance(hdu, fits.ImageHDU):
        return "image"
    if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
        return "table"
    return "other"


def _shape(header: fits.Header) -> tuple:
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))


def _describe_hdu(index: int, hdu, name: str) -> ImageHDUData:
    kind = _kind(hdu)
    header = hdu.header
    if kind not in IMAGE_KINDS:
        what = {"table": "a table"}.get(kind, f"a {type(hdu).__name__}")
        return ImageHDUData(index, kind, header, (), None, False, f"{what}, not an image",
                            name=name)
    shape = _shape(header)
    bitpix = int(header.get("BITPIX", 0))
    if not shape or 0 in shape:
        reason = "no data"
    elif len(shape) not in (2, 3):
        reason = f"{len(shape)}-D data (only 2-D images and 3-D cubes are masked)"
    else:
        reason = ""
    return ImageHDUData(index, kind, header, shape, bitpix, not reason, reason, name=name)


@contextlib.contextmanager
def open_image(source: ImageSource | str, accept=()) -> Iterator[FitsImage]:
    """Open an input read-only and describe its HDUs (no pixel data read yet).

    One of our outputs raises SkippedInput, except check-images of the types `accept`.

    Raises InputError when the file is missing, not FITS, truncated in its headers, the
    ``[N]`` index is out of range or names a non-image HDU, or there is no image HDU to mask.
    """
    if isinstance(source, str):
        source = ImageSource(source)
    if not os.path.isfile(source.path):
        raise InputError(source.path, _not_a_file(source.path, "no such file"))
    hdul = None
    try:
        with _warnings_as_errors(source.path):
            hdul = fits.open(source.path, mode="readonly", memmap=None,
                             do_not_scale_image_data=False, lazy_load_hdus=False)
    except InputError:
        if hdul is not None:
            hdul.close()
        raise
    except MemoryError:
        raise
    except Exception as exc:                                          # noqa: BLE001
        raise InputError(source.path, f"not a readable FITS file: {_describe(exc)}") from None
    try:
        if not len(hdul):
            raise InputError(source.path, "not a readable FITS file: no HDU")
        if source.hdu is None:
            picked = range(len(hdul))
        else:
            if source.hdu >= len(hdul):
                raise InputError(source.name, f"HDU index {source.hdu} out of range "
                                              f"(the file has {len(hdul)} HDUs, 0 to "
                                              f"{len(hdul) - 1})")
            picked = [source.hdu]
        with _warnings_as_errors(source.path):
            hdus = [_describe_hdu(i, hdul[i], f"{source.path}[{i}]") for i in picked]
        if any(is_marked(h.header, accept) for h in hdus):
            raise SkippedInput(source.name, f"skipped: a maximask output ({OUTPUT_MARK} card), "
                                            "not an image to mask")
        if source.hdu is not None and not hdus[0].maskable:
            raise InputError(source.name, f"HDU {source.hdu} is not maskable: "
                                          f"{hdus[0].reason}")
        if not any(h.maskable for h in hdus):
            raise InputError(source.name, "no image HDU with 2-D or 3-D data to mask")
        yield FitsImage(source, hdul, hdus)
    finally:
        hdul.close()


def read_image_hdus(source: ImageSource | str) -> Iterator[ImageHDUData]:
    """Yield every HDU of `source` in file order (only HDU N for ``file[N]``).

    Maskable HDUs come with ``data`` read (float32); the others (empty primary, tables...)
    come with ``data=None`` and a ``reason``, so the caller can keep the file's structure
    and say what it skipped. Errors raise InputError (see :func:`open_image`).
    """
    with open_image(source) as image:
        for info in image.hdus:
            yield image.read(info)


def check_data(data: np.ndarray, name: str) -> int:
    """Raise InputError if `data` is all NaN/inf or all zero; else return its non-finite count.

    The count (NaN and infinite pixels) is for a warning by the caller.
    """
    flat = np.asarray(data).reshape(-1)
    if flat.size == 0:
        raise InputError(name, "no pixels")
    nonfinite = nonzero = 0
    step = 1 << 22
    for start in range(0, flat.size, step):
        block = flat[start:start + step]
        finite = np.isfinite(block)
        nonfinite += block.size - int(np.count_nonzero(finite))
        nonzero += int(np.count_nonzero(finite & (block != 0)))
    if nonfinite == flat.size:
        raise InputError(name, "all pixels are NaN or infinite")
    if nonzero == 0:
        raise InputError(name, "all pixels are zero" if nonfinite == 0
                         else "all finite pixels are zero")
    return nonfinite


# --------------------------------------------------------------------------------------
# Output names and headers
# --------------------------------------------------------------------------------------

def output_path(source: ImageSource | str, output_dir: str | None = None,
                suffix: str = DEFAULT_SUFFIX) -> str:
    """The output file for `source`.

    The input's name loses its ``.fits``/``.fit``/``.fts``, ``.fz`` and ``.gz`` endings and
    gains `suffix`: ``x.fits``, ``x.fits.fz``, ``x.fits.gz``, ``x.fz`` -> ``x.mask.fits``.
    For ``x.fits[3]`` the HDU index goes before the suffix's final ``.fits`` (or ``.png``):
    ``x.mask3.fits`` (appended to the suffix when it ends otherwise).
    The output goes in `output_dir`, or beside the input when it is None or empty.
    """
    if isinstance(source, str):
        source = ImageSource(source)
    base = os.path.basename(source.path)
    stem = _FITS_ENDINGS.sub("", base) or base
    if source.hdu is not None:
        ext = os.path.splitext(suffix)[1]
        if ext.lower() in (".fits", ".png"):
            suffix = f"{suffix[:-len(ext)]}{source.hdu}{ext}"
        else:
            suffix = f"{suffix}{source.hdu}"
    folder = output_dir if output_dir else os.path.dirname(source.path)
    out = os.path.join(folder, stem + suffix)
    if os.path.abspath(out) == os.path.abspath(source.path):
        raise OutputError(out, "the output name would be the input's; change the suffix")
    return out


# WCS keyword families; "i"/"j" are axis numbers, "a" an optional alternate-WCS letter.
_WCS_AXIS_KEYS = re.compile(
    r"^(CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CRDER|CSYER|CNAME)(?P<i>\d)(?P<a>[A-Z]?)$")
_WCS_MATRIX_KEYS = re.compile(r"^(CD|PC)(?P<i>\d)_(?P<j>\d)(?P<a>[A-Z]?)$")
_WCS_PV_KEYS = re.compile(r"^(PV|PS)(?P<i>\d)_\d+(?P<a>[A-Z]?)$")
_WCS_GLOBAL_KEYS = re.compile(
    r"^(WCSNAME[A-Z]?|RADESYS[A-Z]?|RADECSYS|EQUINOX[A-Z]?|EPOCH|LONPOLE[A-Z]?|"
    r"LATPOLE[A-Z]?|MJDREF[IF]?|DATEREF|"
    r"A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|A_DMAX|B_DMAX|(A|B|AP|BP)_\d+_\d+|"
    r"WAT\d_\d{3}|LTV[12]|LTM[12]_[12]|WCSDIM)$")


def _wcs_card(key: str) -> bool:
    """True for WCS keywords of the two image axes (a cube's third axis is left out)."""
    for pattern in (_WCS_AXIS_KEYS, _WCS_MATRIX_KEYS, _WCS_PV_KEYS):
        m = pattern.match(key)
        if m:
            return all(int(v) in (1, 2) for k, v in m.groupdict().items()
                       if k in ("i", "j"))
    return bool(_WCS_GLOBAL_KEYS.match(key))


def output_header(input_header: fits.Header | None,
                  extra_cards: Sequence = ()) -> fits.Header:
    """A mask's header: the input's celestial WCS and identification cards, then `extra_cards`.

    The WCS keyword families of the image axes 1 and 2 (CTYPE, CRPIX, CRVAL, CDELT, CD,
    PC, PV, CUNIT, RADESYS, EQUINOX, LONPOLE, LATPOLE, SIP, IRAF WAT/LTV...) are copied
    verbatim, so no distortion convention is lost in a round trip through a WCS library;
    for a 3-D cube the third axis's cards are left out. :data:`METADATA_KEYWORDS` follow.
    `extra_cards` are ``(keyword, value, comment)`` or ``(keyword, value)`` tuples or
    ``fits.Card``; they replace a copied card of the same keyword (COMMENT/HISTORY add).
    """
    out = fits.Header()
    if input_header is not None:
        wanted = set(METADATA_KEYWORDS)
        for card in input_header.cards:
            key = card.keyword
            if key in wanted or _wcs_card(key):
                if key not in out:
                    out.append(copy.copy(card))
    for extra in extra_cards:
        card = extra if isinstance(extra, fits.Card) else fits.Card(*extra)
        if card.keyword in ("COMMENT", "HISTORY", ""):
            out.append(card)
        elif card.keyword in out:
            out[card.keyword] = (card.value, card.comment)
        else:
            out.append(card)
    return out


#: The card of an output HDU that only keeps the place of an input HDU that has no output
#: (a table, a 1-D image...), so that HDU N of an output is always HDU N of its input, as
#: SExtractor's FLAG_IMAGE needs; its value is the input HDU's XTENSION ("PRIMARY" for HDU 0).
PLACEHOLDER_CARD = "MM_EMPTY"


def empty_output(info: ImageHDUData) -> tuple:
    """The ``(kind, header)`` of the data-less output HDU standing for a non-maskable input HDU.

    Every writer of per-HDU outputs (mask, check-images, in-process or Dask) uses it, so
    the outputs keep the input's HDU positions. An image HDU without data (an empty
    primary) gives an empty image HDU with :func:`output_header`; any other HDU (table,
    1-D or >3-D image...) gives an empty image HDU (NAXIS = 0) carrying
    :data:`PLACEHOLDER_CARD` as well.
    """
    kind = info.kind if info.kind in IMAGE_KINDS else "image"
    if info.kind in IMAGE_KINDS and (not info.shape or 0 in info.shape):
        return kind, output_header(info.header)
    what = str(info.header.get("XTENSION", "PRIMARY")).strip() or "PRIMARY"
    return kind, output_header(info.header, [(PLACEHOLDER_CARD, what[:20],
                                              "placeholder: this input HDU is not masked")])


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_STRUCTURAL = {
    "SIMPLE", "EXTEND", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "GROUPS",
    "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM", "TFIELDS", "THEAP",
    "ZIMAGE", "ZSIMPLE", "ZEXTEND", "ZTENSION", "ZBITPIX", "ZNAXIS", "ZPCOUNT", "ZGCOUNT",
    "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0", "ZBLANK", "ZSCALE", "ZZERO", "ZHECKSUM", "ZDATASUM",
    "ZBLOCKED", "ZMASKCMP",
}
_STRUCTURAL_RE = re.compile(r"^(NAXIS\d+|ZNAXIS\d+|ZTILE\d+|ZNAME\d+|ZVAL\d+|T(TYPE|FORM|"
                            r"UNIT|NULL|SCAL|ZERO|DISP|DIM|BCOL)\d+)$")


def _clean_header(header: fits.Header | None) -> fits.Header:
    out = fits.Header()
    if header is None:
        return out
    for card in header.cards:
        key = card.keyword
        if key in _STRUCTURAL or _STRUCTURAL_RE.match(key):
            continue
        out.append(copy.copy(card))
    return out


def _output_array(data) -> np.ndarray:
    """`data` in a dtype FITS stores natively, with no BZERO/BSCALE (no unsigned > 8 bits)."""
    a = np.asarray(data)
    kind, size = a.dtype.kind, a.dtype.itemsize
    if kind == "b":
        return a.astype(np.uint8)
    if kind == "i":
        return a.astype(np.int16) if size == 1 else a
    if kind == "u":
        if size == 1:
            return a
        if size == 2:
            return a.astype(np.int32)
        if size == 4:
            return a.astype(np.int64)
        if a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise ValueError("uint64 values beyond int64 cannot be written to FITS")
        return a.astype(np.int64)
    if kind == "f":
        return a.astype(np.float32) if size < 4 else a
    raise ValueError(f"cannot write {a.dtype} data to a FITS image")


def _build_hdus(entries: Sequence) -> fits.HDUList:
    if not len(entries):
        raise ValueError("write_hdus needs at least one HDU")
    out = []
    for n, entry in enumerate(entries):
        if isinstance(entry, fits.hdu.base._BaseHDU):                 # a ready HDU, verbatim
            if n == 0 and not isinstance(entry, fits.PrimaryHDU):
                out.append(fits.PrimaryHDU())
            out.append(entry)
            continue
        kind, data, header = entry
        if kind not in IMAGE_KINDS:
            raise ValueError(f"HDU {n}: kind {kind!r} is not one of {IMAGE_KINDS}")
        if kind == "primary" and n:
            raise ValueError(f"HDU {n}: only the first HDU can be the primary")
        arr = None if data is None else _output_array(data)
        hdr = _clean_header(header)
        cls = fits.PrimaryHDU if n == 0 else fits.ImageHDU
        hdu = cls(data=arr, header=hdr)
        for key in ("BZERO", "BSCALE", "BLANK"):                      # never scaled output
            hdu.header.remove(key, ignore_missing=True)
        out.append(hdu)
    return fits.HDUList(out)


def write_hdus(path: str, hdus: Sequence, overwrite: bool = False,
               protect: frozenset = frozenset()) -> str:
    """Write a mask file with the input's HDU structure; return `path`.

    `hdus` lists, in the input's order, ``(kind, data_or_None, header)`` tuples (kind one of
    "primary", "image", "compressed"; header may be None) or ready astropy HDUs copied as
    they are. The first entry becomes the PrimaryHDU (empty when its data is None; an
    "image" entry first, as for ``x.fits[3]``, puts its data in the primary), the others
    ImageHDUs; compressed inputs give plain uncompressed images. Booleans are written as
    BITPIX 8, int8 as 16, uint16 as 32, uint32 as 64: no BZERO/BSCALE card is ever written.

    The file is written under a hidden temporary name in the same directory and renamed
    into place when complete, so an interrupted run never leaves a partial mask; on any
    error the temporary file is removed. An existing `path` is left untouched unless
    `overwrite` (OutputExistsError); an unwritable place raises OutputError; a `path` that
    is one of the files in `protect` (see :func:`file_identities`) is never written,
    whatever `overwrite` says.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(path, "output path is a directory")
    check_not_input(path, protect)
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(path)
    hdul = _build_hdus(hdus)

    def refuse_if_created_meanwhile():
        if os.path.lexists(path) and not overwrite:
            raise OutputExistsError(path)

    write_atomically(path, lambda tmp: hdul.writeto(tmp, overwrite=True, output_verify="exception"),
                     before_replace=refuse_if_created_meanwhile, protect=protect)
    return path


def file_identities(paths: Iterable[str]) -> frozenset:
    """The (device, inode) of each existing file of `paths`: what :func:`check_not_input`
    protects. Identities, not names, so symbolic and hard links to an input count too."""
    out = set()
    for path in paths:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            out.add((st.st_dev, st.st_ino))
    return frozenset(out)


def check_not_input(path: str, protect: frozenset) -> None:
    """Raise OutputError if `path` is an existing file whose identity is in `protect`."""
    if not protect:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) in protect:
        raise OutputError(path, "is an input of this run: an output is never written over an "
                                "input, whatever OVERWRITE says (change OUTPUT_SUFFIX or OUTPUT_DIR)")


def _directory_problem(folder: str) -> str:
    """Why `folder`, which is not a directory, cannot take outputs: "output directory ..."."""
    if not os.path.lexists(folder):
        return "output directory does not exist"
    problem = _not_a_file(folder, "")
    if not problem:
        return "output directory is a regular file, not a directory"
    if problem.startswith("not a regular file: "):
        return f"output directory is {problem[len('not a regular file: '):]}, not a directory"
    if problem.startswith("a "):
        return f"output directory is {problem.replace(', not a file', '')}"
    return f"output directory: {problem}"


def check_writable(folder: str) -> None:
    """Raise OutputError unless a file can be created in `folder` (tried, then removed).

    os.access is not enough: root may "write" anywhere, yet not create a file in /proc.
    """
    folder = folder or "."
    if not os.path.isdir(folder):
        raise OutputError(folder, _directory_problem(folder))
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".maximask-probe-"):
            pass
    except OSError as exc:
        raise OutputError(folder, f"cannot create files in this directory: {_describe(exc)}") \
            from None


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TEMPORARY = re.compile(r"^\..+\.maximask-tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)$")
#: The file that marks a temporary folder as ours; written first, before any payload.
TEMPORARY_MARK = "MAXIMASK-TEMPORARY"
_MARK_TEXT = "maximask temporary output folder\nhost {host}\npid {pid}\n"
#: The name of what is written inside a temporary folder before it is renamed into place.
PAYLOAD = "payload"
_swept: set = set()


def temporary_path(path: str) -> str:
    """The hidden folder that `path` is written in before it is renamed into place.

    ``.NAME.maximask-tmp-HOST-PID``: the folder holds :data:`TEMPORARY_MARK` (written
    first, naming the host and process) and the payload (:data:`PAYLOAD`). A later run on
    this host removes such a folder once its process is dead (:func:`remove_stale_temporaries`):
    the name and the mark together prove that maximask wrote it.
    """
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.maximask-tmp-{_HOST}-{os.getpid()}")


@contextlib.contextmanager
def temporary_output(path: str):
    """Create the marked temporary folder of `path` and yield the payload's path inside it.

    On leaving normally the payload is still there (the caller renames it into place); the
    folder is removed in every case. A folder of this process left by an earlier call is
    removed first (only if it is ours: :func:`_remove_if_ours`).
    """
    tmp = temporary_path(path)
    _remove_if_ours(tmp, check_pid=False)
    os.mkdir(tmp)
    try:
        with open(os.path.join(tmp, TEMPORARY_MARK), "x") as f:
            f.write(_MARK_TEXT.format(host=_HOST, pid=os.getpid()))
        yield os.path.join(tmp, PAYLOAD)
    finally:
        _remove_if_ours(tmp, check_pid=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # EPERM: someone else's live process
        return True
    return True


def _remove_if_ours(path: str, check_pid: bool = True) -> bool:
    """Remove `path` if it is one of our temporary folders: a real folder (not a link)
    named as :func:`temporary_path` names them, for this host (and a dead process when
    check_pid), holding nothing but :data:`TEMPORARY_MARK` with our text and the payload;
    an empty folder of that name (killed before its mark was written) goes too.
    Anything else is left alone. True when removed."""
    m = _TEMPORARY.match(os.path.basename(path))
    if not m or m.group("host") != _HOST:
        return False
    pid = int(m.group("pid"))
    if check_pid and _alive(pid):
        return False
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            return False
        entries = set(os.listdir(path))
        if entries:
            if not entries <= {TEMPORARY_MARK, PAYLOAD} or TEMPORARY_MARK not in entries:
                return False
            mark = os.path.join(path, TEMPORARY_MARK)
            if os.path.islink(mark):
                return False
            with open(mark) as f:
                if f.read(256) != _MARK_TEXT.format(host=_HOST, pid=pid):
                    return False
            payload = os.path.join(path, PAYLOAD)
            if os.path.isdir(payload) and not os.path.islink(payload):
                shutil.rmtree(payload)
            elif os.path.lexists(payload):
                os.remove(payload)
            os.remove(mark)
        os.rmdir(path)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def remove_stale_temporaries(folder: str) -> list:
    """Remove the temporary folders that dead processes of this host left in `folder`.

    A process killed with SIGKILL cannot remove its temporary folder; the next run that
    writes into the same directory does, but only folders it can prove are ours (the
    name of :func:`temporary_path` and the mark inside: see :func:`_remove_if_ours`);
    a user's file or folder is never removed, whatever its name. Returns the paths removed.
    """
    try:
        entries = [e.name for e in os.scandir(folder or ".") if e.name.startswith(".")]
    except OSError:
        return []
    paths = [os.path.join(folder, name) for name in entries]
    return [p for p in paths if _TEMPORARY.match(os.path.basename(p)) and _remove_if_ours(p)]


def write_atomically(path: str, write, before_replace=None, protect: frozenset = frozenset()) -> None:
    """Write a file through write(tmp), then rename it to `path`.

    tmp is the payload of a marked hidden folder in `path`'s directory
    (:func:`temporary_output`), so the rename is atomic and no partial file ever stands
    under `path`, even if the process is killed; on any error or interruption (or one
    raised by before_replace(), called just before the rename) the folder is removed, and
    what a SIGKILLed run left is removed by the next write into that directory. A missing
    directory or an OSError while writing or renaming raises OutputError; so does a `path`
    in `protect` (:func:`check_not_input`).
    """
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise OutputError(path, _directory_problem(folder).replace("output directory",
                                                                   f"output directory {folder}", 1))
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_temporaries(folder)
    check_not_input(path, protect)
    try:
        with temporary_output(path) as tmp:
            try:
                write(tmp)
            except OSError as exc:
                raise OutputError(path, f"cannot write output: {_describe(exc)}") from None
            if before_replace is not None:
                before_replace()
            check_not_input(path, protect)
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(path, f"cannot write output: {_describe(exc)}") from None


def image_planes(source, log=None, accept=()):
    """Yield ``(name, plane, header)`` for every image of `source` (a path or ImageSource):
    each image HDU, and each plane of a cube (``name[p]``); plane: 2-D array as read,
    header: the HDU's header. A plane that is all zero or all NaN is skipped, and said
    through `log` once another plane of the file is usable; when none is, InputError (the
    first problem) says it instead, so each problem is said once. accept: as open_image.
    """
    log = log or (lambda line: None)
    if isinstance(source, str):
        source = find_inputs([source])[0]
    with open_image(source, accept) as image:
        failures, usable = [], False
        for info in image.maskable:
            hdu = image.read(info)
            planes = [hdu.data] if hdu.data.ndim == 2 else list(hdu.data)
            for p, plane in enumerate(planes):
                name = hdu.name if len(planes) == 1 else f"{hdu.name}[{p}]"
                try:
                    nbad = check_data(plane, name)
                except InputError as exc:
                    failures.append(exc)
                    if usable:
                        log(f"{exc}: skipped")
                    continue
                if not usable:  # the planes skipped so far can be said now
                    usable = True
                    for exc in failures:
                        log(f"{exc}: skipped")
                if nbad:
                    log(f"{name}: {nbad} NaN or infinite pixels (estimated as 0)")
                yield name, plane, info.header
            del hdu
        if not usable:
            raise failures[0]
