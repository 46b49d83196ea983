"""FITS reading and writing: the image HDUs of an input as ``float32`` planes and headers,
and output files that keep the input's HDU structure, WCS and metadata.

Everything that reads or writes a FITS image goes through here, so the pipelines see only
planes and headers; a problem a user can cause surfaces as an :class:`~maximask.errors.InputError`.
Inputs are never modified: files are opened read-only. Input discovery is
:mod:`maximask.inputs`; atomic writing :mod:`maximask.outputs`.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import mmap
import os
import re
import warnings
from typing import Iterator, Sequence

import numpy as np
from astropy.io import fits

from .errors import InputError, OutputError, OutputExistsError, SkippedInput, _describe, _one_line
from .inputs import _FITS_ENDINGS, DEFAULT_SUFFIX, OUTPUT_MARK, ImageSource, _not_a_file, find_inputs, is_marked
from .outputs import check_not_input, write_atomically

__all__ = [
    "ImageHDUData", "FitsImage", "open_image", "read_image_hdus", "check_data", "image_planes",
    "output_path", "output_header", "write_hdus", "METADATA_KEYWORDS", "PLACEHOLDER_CARD", "empty_output",
]


#: Keywords copied from an input header to its mask besides the WCS (when present).
METADATA_KEYWORDS = (
    "EXTNAME", "EXTVER", "OBJECT", "DATE-OBS", "MJD-OBS", "TIMESYS", "EXPTIME", "FILTER",
    "INSTRUME", "TELESCOP", "DETECTOR", "CCDNAME", "CCDNUM",
)

#: HDU kinds reported by :class:`ImageHDUData` and accepted by :func:`write_hdus`.
IMAGE_KINDS = ("primary", "image", "compressed")


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
