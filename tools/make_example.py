#!/usr/bin/env python3
"""Write examples/field.fits.fz: the shipped example image of the README and docs/getting_started.md.

A 1024 x 1024 synthetic exposure (maximask.simulation.synthetic: stars, saturated stars with bleeds
and spikes, cosmic rays, a trail, a hot column, hot and dead pixels) with a TAN WCS,
tile-compressed with RICE (the ``.fz`` of fpack).

    python tools/make_example.py
"""
import os
import sys

import numpy as np
from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from maximask.simulation.synthetic import make_field  # noqa: E402

OUT = os.path.join(HERE, "..", "examples", "field.fits.fz")


def main():
    image = make_field((1024, 1024), seed=2020)
    header = fits.Header()
    for key, value in [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRPIX1", 512.5),
                       ("CRPIX2", 512.5), ("CRVAL1", 150.1), ("CRVAL2", 2.2),
                       ("CD1_1", -5.2e-5), ("CD1_2", 0.0), ("CD2_1", 0.0), ("CD2_2", 5.2e-5),
                       ("RADESYS", "ICRS"), ("EQUINOX", 2000.0), ("OBJECT", "maximask example"),
                       ("EXPTIME", 300.0), ("GAIN", 1.0), ("SATURATE", 60000.0)]:
        header[key] = value
    hdul = fits.HDUList([fits.PrimaryHDU(),
                         fits.CompImageHDU(image.astype(np.float32), header, compression_type="RICE_1",
                                           quantize_level=16.0)])
    hdul.writeto(OUT, overwrite=True)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
