"""MaxiMask flags for astropy users: a flag-name map for ``astropy.nddata.bitmask`` and
masking of ``NDData``/``CCDData`` objects, as ccdproc's cosmic-ray functions do.

Bit k of a FLAGS plane is class k of :data:`maximask.classes.CLASSES` (CR is bit 0, value 1;
... BBG is bit 12, value 4096; BG is never a bit). :data:`FLAG_NAME_MAP` names those bits for
:func:`astropy.nddata.bitmask.bitfield_to_boolean_mask`, whose ``ignore_flags`` lists the flags
to *ignore*; prefix the list with ``~`` to keep only the flags listed::

    from astropy.nddata.bitmask import bitfield_to_boolean_mask
    bad = bitfield_to_boolean_mask(flags, ignore_flags="~CR,SAT", flag_name_map=FLAG_NAME_MAP)
    # True where CR or SAT is set
    bad = bitfield_to_boolean_mask(flags, ignore_flags="CR,SAT", flag_name_map=FLAG_NAME_MAP)
    # True where any class but CR and SAT is set

This module imports neither ONNX Runtime nor the C++ extension; :func:`mask_nddata` runs a
:class:`maximask.Masker` it is given.
"""
import numpy as np
from astropy.nddata import NDData
from astropy.nddata.bitmask import extend_bit_flag_map

from .classes import CLASSES

__all__ = ["FLAG_NAME_MAP", "FLAG_BITS", "class_bits", "mask_nddata"]

#: Class abbreviation -> bit value (1 << bit) of a FLAGS plane; BG has no bit.
FLAG_BITS = {c.abbr: 1 << c.index for c in CLASSES if c.abbr != "BG"}

#: The FLAGS bits by class name, for ``astropy.nddata.bitmask`` (``flag_name_map=``).
FLAG_NAME_MAP = extend_bit_flag_map("MaxiMaskFlags", **FLAG_BITS)


def class_bits(classes):
    """OR of the bit values of ``classes`` (a list of abbreviations or a comma-separated string).

    Raises ValueError for a name that is not a FLAGS class (BG never is)."""
    names = classes.split(",") if isinstance(classes, str) else list(classes)
    bits = 0
    for name in names:
        key = str(name).strip().upper()
        if key not in FLAG_BITS:
            raise ValueError(f"{name!r} is not a FLAGS class; expected some of {','.join(FLAG_BITS)}")
        bits |= FLAG_BITS[key]
    return bits


def mask_nddata(masker, data, mask_classes=None):
    """Run ``masker`` on an NDData or CCDData and return a new one with the flags and mask set.

    masker: a :class:`maximask.Masker` whose OUTPUT_TYPE is FLAGS (the default).
    data: an :class:`~astropy.nddata.NDData` (e.g. a ``CCDData``) of a 2-D image, in ADU.
    mask_classes: the classes whose pixels go into ``.mask`` (abbreviations, list or
    comma-separated string); default: every class the masker flags (its ``CLASSES``).

    Returns an object of the same type as ``data`` (its data, uncertainty, WCS, meta and
    unit shared, not copied) whose ``.flags`` is the (h, w) int16 FLAGS plane and whose
    ``.mask`` is the input's mask (if any) OR the pixels where a class of ``mask_classes``
    is flagged. The input is not modified.
    """
    if not isinstance(data, NDData):
        raise TypeError(f"an astropy NDData or CCDData expected, got {type(data).__name__}")
    if masker.config.OUTPUT_TYPE != "FLAGS":
        raise ValueError(f"a Masker with OUTPUT_TYPE FLAGS is needed, got {masker.config.OUTPUT_TYPE}")
    image = np.asarray(data.data)
    if image.ndim != 2:
        raise ValueError(f"a 2-D image expected, got shape {image.shape}")
    flags = masker.run(image)
    if mask_classes is None:
        mask_classes = [a for a in masker.config.CLASSES if a in FLAG_BITS]
    bad = (flags.astype(np.int64) & class_bits(mask_classes)) != 0
    if data.mask is not None:
        bad |= np.asarray(data.mask, dtype=bool)
    result = type(data)(data, copy=False)
    result.mask = bad
    result.flags = flags  # CCDData has a flags attribute; on other NDData it is added
    return result
