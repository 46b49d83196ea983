"""The FLAGS output as SExtractor's FLAG_IMAGE, checked with the real source-extractor."""
import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from maximask.cli import main_mask
from maximask.simulation.synthetic import add_cosmic_ray, add_saturated_star, make_field

SEX = shutil.which("source-extractor") or shutil.which("sex")


@pytest.fixture(autouse=True)
def source_extractor_installed():
    """The README's test set-up installs it: without it these tests fail rather than skip."""
    if SEX is None:
        pytest.fail("source-extractor is not installed: apt-get install source-extractor "
                    "(README, Run the tests)", pytrace=False)


SAT_BIT, CR_BIT = 1 << 9, 1 << 0
SAT_AT, CR_AT = (300.0, 350.0), (120, 160)  # (y, x), 0-based


def field(seed, saturated_star=False, cosmic_ray=False):
    image = make_field((600, 700), seed=seed, saturated=0, ncosmics=0, trail=False,
                       hot_column=False).astype(np.float64)
    if saturated_star:
        add_saturated_star(image, *SAT_AT, bleed=30)
    if cosmic_ray:
        add_cosmic_ray(image, *CR_AT, length=4, direction=(0, 1), energies=(5000.0, 12000.0, 8000.0, 3000.0))
    return np.minimum(image, 60000).astype(np.float32)


def sextract(tmp_path, image_path, flag_path):
    params = tmp_path / "maximask.param"
    params.write_text("NUMBER\nEXT_NUMBER\nX_IMAGE\nY_IMAGE\nFLAGS\nIMAFLAGS_ISO\n")
    catalog = tmp_path / "catalog.txt"
    subprocess.run([SEX, str(image_path), "-c", os.devnull, "-PARAMETERS_NAME", str(params),
                    "-CATALOG_TYPE", "ASCII_HEAD", "-CATALOG_NAME", str(catalog),
                    "-FILTER", "N", "-DETECT_THRESH", "5", "-DETECT_MINAREA", "3",
                    "-SATUR_LEVEL", "59000", "-FLAG_IMAGE", str(flag_path),
                    "-CHECKIMAGE_TYPE", "NONE", "-VERBOSE_TYPE", "QUIET"],
                   check=True, cwd=tmp_path, capture_output=True)
    rows = np.atleast_2d(np.loadtxt(catalog, comments="#"))
    return {name: rows[:, k] for k, name in
            enumerate(["NUMBER", "EXT_NUMBER", "X_IMAGE", "Y_IMAGE", "FLAGS", "IMAFLAGS_ISO"])}


def nearest(cat, y, x, ext=None):
    d = np.hypot(cat["X_IMAGE"] - 1 - x, cat["Y_IMAGE"] - 1 - y)
    if ext is not None:
        d[cat["EXT_NUMBER"] != ext] = np.inf
    k = int(np.argmin(d))
    assert d[k] < 4, f"no object detected near ({y}, {x})"
    return int(cat["IMAFLAGS_ISO"][k])


def centre_flags_are_in_imaflags(cat, flags_by_ext):
    """Flags at each object's centre pixel must appear in its IMAFLAGS_ISO (an OR over the
    isophote): this fails if the flag map were shifted, flipped or misread."""
    ok = []
    for ext, x, y, imaflags in zip(cat["EXT_NUMBER"], cat["X_IMAGE"], cat["Y_IMAGE"], cat["IMAFLAGS_ISO"]):
        centre = int(flags_by_ext[int(ext)][int(round(y)) - 1, int(round(x)) - 1])
        ok.append((centre & ~int(imaflags)) == 0)
    return np.mean(ok)


def test_single_image_flags_in_sextractor(tmp_path):
    image_path = tmp_path / "field.fits"
    fits.PrimaryHDU(field(31, saturated_star=True, cosmic_ray=True)).writeto(image_path)
    assert main_mask([str(image_path), "-VERBOSE_TYPE", "QUIET"]) == 0
    flag_path = tmp_path / "field.mask.fits"
    with fits.open(flag_path) as hdul:
        assert hdul[0].header["BITPIX"] == 16 and "BZERO" not in hdul[0].header
        flags = hdul[0].data
    cat = sextract(tmp_path, image_path, flag_path)
    assert len(cat["NUMBER"]) > 50
    assert nearest(cat, *SAT_AT) & SAT_BIT
    assert nearest(cat, *CR_AT) & CR_BIT
    assert centre_flags_are_in_imaflags(cat, {1: flags}) > 0.99
    assert np.mean(cat["IMAFLAGS_ISO"] == 0) > 0.5  # ordinary stars stay unflagged


def test_two_extension_mef_flags_in_sextractor(tmp_path):
    image_path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(field(41, cosmic_ray=True), name="CCD1"),
                  fits.ImageHDU(field(42, saturated_star=True), name="CCD2")]).writeto(image_path)
    assert main_mask([str(image_path), "-VERBOSE_TYPE", "QUIET"]) == 0
    flag_path = tmp_path / "mef.mask.fits"
    with fits.open(flag_path) as hdul:
        assert len(hdul) == 3 and hdul[0].data is None
        assert [h.name for h in hdul[1:]] == ["CCD1", "CCD2"]
        flags = {1: hdul[1].data, 2: hdul[2].data}
    cat = sextract(tmp_path, image_path, flag_path)
    assert set(cat["EXT_NUMBER"].astype(int)) == {1, 2}
    assert nearest(cat, *CR_AT, ext=1) & CR_BIT
    assert nearest(cat, *SAT_AT, ext=2) & SAT_BIT
    assert centre_flags_are_in_imaflags(cat, flags) > 0.99


def test_mef_with_a_table_between_images_keeps_hdu_positions_for_sextractor(tmp_path):
    """Primary, image, table, image: the mask's second image must be HDU 3, as in the input
    (an empty placeholder stands at 2), or SExtractor says the flag image has no image data."""
    image_path = tmp_path / "m.fits"
    table = fits.BinTableHDU.from_columns([fits.Column("x", "E", array=np.arange(3.0))], name="CAT")
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(field(51, cosmic_ray=True), name="CCD1"), table,
                  fits.ImageHDU(field(52, saturated_star=True), name="CCD2")]).writeto(image_path)
    assert main_mask([str(image_path), "-VERBOSE_TYPE", "QUIET"]) == 0
    flag_path = tmp_path / "m.mask.fits"
    with fits.open(flag_path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "CCD1", "CAT", "CCD2"]
        assert hdul[2].data is None and hdul[2].header["NAXIS"] == 0
        assert hdul[2].header["MM_EMPTY"] == "BINTABLE"
        flags = {1: hdul[1].data, 2: hdul[3].data}  # SExtractor numbers the image HDUs
    cat = sextract(tmp_path, image_path, flag_path)  # check=True: it must succeed
    assert set(cat["EXT_NUMBER"].astype(int)) == {1, 2}
    assert nearest(cat, *CR_AT, ext=1) & CR_BIT
    assert nearest(cat, *SAT_AT, ext=2) & SAT_BIT
    assert centre_flags_are_in_imaflags(cat, flags) > 0.99
