"""Units of work: one image HDU, or one plane of a cube, of an input file.

The pipelines split a file into units (:func:`units_of`), process each unit on its own
(:func:`read_unit` gives its pixels, read from the file by whoever processes it, so a Dask
worker reads its own input from the shared filesystem), then assemble the results in the
file's HDU order. In-process runs and Dask runs go through the same three steps.
"""
import dataclasses

import numpy as np

from . import errors, fitsio, inputs


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """One 2-D image to process: HDU ``index`` of ``path``, plane ``plane`` of a cube.

    name: what messages call it, ``file[index]`` or ``file[index][plane]``; shape: (h, w).
    """

    path: str
    index: int
    plane: int | None
    name: str
    shape: tuple

    @property
    def pixels(self):
        return int(np.prod(self.shape))


@dataclasses.dataclass
class FilePlan:
    """A file split into units: ``source`` (an ImageSource), its ``output`` path (None for
    maxitrack), ``entries``, one per HDU, in file order: ``(kind, units, header, ...)``,
    units None for an HDU written without data (an empty primary, a table's placeholder),
    the identities of the files the output may never replace (``protect``) and the file's
    check-images (``checks``, a checkimages.FileCheckImages, or None)."""

    source: inputs.ImageSource
    output: str | None
    entries: list
    protect: frozenset = frozenset()
    checks: object = None

    @property
    def units(self):
        return [u for _, units, *_ in self.entries if units for u in units]


@dataclasses.dataclass
class UnitResult:
    """What processing a unit gives back: the output ``value`` (an array or a score),
    log ``lines``, the unit's ``failure`` ((name, problem) of an InputError when its pixels
    were unusable and the value is a placeholder, else None), ``seconds`` of processing
    and the ``provider`` that ran the network."""

    value: object
    lines: list
    failure: tuple | None = None
    seconds: float = 0.0
    provider: str = ""
    data: np.ndarray | None = None   # the unit's pixels, only when check-images need them
    products: list | None = None     # its checkimages.PlaneProducts, likewise
    trails: int = 0                  # segments the trail stage found (TRAIL_SEARCH)


def units_of(path, info):
    """The units of a maskable HDU `info` (an ImageHDUData of the file at `path`): the HDU,
    or each plane of a cube."""
    if len(info.shape) == 3:
        return [WorkUnit(path, info.index, p, f"{info.name}[{p}]", info.shape[1:])
                for p in range(info.shape[0])]
    return [WorkUnit(path, info.index, None, info.name, info.shape)]


def read_unit(unit):
    """The unit's pixels: a float32 (h, w) array (InputError on a bad file).

    A cube plane is read with its whole cube, which is then dropped.
    """
    with fitsio.open_image(inputs.ImageSource(unit.path, unit.index)) as image:
        data = image.read(image.hdus[0]).data
    return data if unit.plane is None else np.ascontiguousarray(data[unit.plane])


def read_checked(unit):
    """The unit's pixels, the lines to log about them, and the failure ((name, problem) when
    they are all zero or all NaN, else None)."""
    data = read_unit(unit)
    try:
        nbad = fitsio.check_data(data, unit.name)
    except errors.InputError as exc:
        return data, [], (exc.name, exc.problem)
    return data, [f"{unit.name}: {nbad} NaN or infinite pixels (estimated as 0)"] if nbad else [], None
