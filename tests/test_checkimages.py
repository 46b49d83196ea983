"""Check-images (CHECKIMAGE_TYPE): CLEANED, PREVIEW, BACKGROUND, BACKGROUND_RMS."""
import hashlib
import os
import sys

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from maximask import checkimages, inputs, kernels, preview
from maximask.classes import ABBREVIATIONS
from maximask.cli import main_mask
from maximask.simulation.synthetic import make_field

ALL_TYPES = "CLEANED,PREVIEW,BACKGROUND,BACKGROUND_RMS"
CLEAN_BITS = sum(1 << ABBREVIATIONS.index(a) for a in ("CR", "HCL", "DCL", "HP", "DP"))
WCS = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.1, "CRVAL2": 2.2,
       "CRPIX1": 100.0, "CRPIX2": 90.0, "CD1_1": -7.3e-05, "CD1_2": 0.0, "CD2_1": 0.0,
       "CD2_2": 7.3e-05}


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(capsys, *argv):
    code = main_mask([str(a) for a in argv] + ["-VERBOSE_TYPE", "QUIET"])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("maximask: "), err
    return err


@pytest.fixture(scope="module")
def mef(tmp_path_factory):
    """An MEF: empty primary, a float32 image, an int16 image with BZERO, a table; WCS."""
    folder = tmp_path_factory.mktemp("mef")
    path = str(folder / "mef.fits")
    a = make_field((210, 250), seed=3, saturated=1)
    b = np.round(make_field((180, 230), seed=4, saturated=0)).astype(np.int32)
    hdu_b = fits.ImageHDU(b.astype(np.uint16), name="CCD2")       # uint16: BZERO 32768
    hdu_a = fits.ImageHDU(a, name="CCD1")
    for hdu in (hdu_a, hdu_b):
        hdu.header.update(WCS)
        hdu.header["GAIN"] = 1.7
    table = fits.BinTableHDU.from_columns([fits.Column("x", "E", array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), hdu_a, hdu_b, table]).writeto(path)
    return path


@pytest.fixture(scope="module")
def mef_run(mef, tmp_path_factory):
    """The mask and all check-images of the MEF, and the mask of a run without them."""
    before = digest(mef)
    assert main_mask([mef, "-CHECKIMAGE_TYPE", ALL_TYPES, "-VERBOSE_TYPE", "QUIET"]) == 0
    plain = tmp_path_factory.mktemp("plain")
    assert main_mask([mef, "-OUTPUT_DIR", str(plain), "-VERBOSE_TYPE", "QUIET"]) == 0
    assert digest(mef) == before                                     # the input is untouched
    stem = mef[:-len(".fits")]
    return {"input": fits.open(mef), "mask": fits.open(stem + ".mask.fits"),
            "plain": fits.open(str(plain / "mef.mask.fits")),
            "CLEANED": fits.open(stem + ".cleaned.fits"),
            "BACKGROUND": fits.open(stem + ".back.fits"),
            "BACKGROUND_RMS": fits.open(stem + ".backrms.fits"), "PREVIEW": stem + ".preview.png"}


def test_check_images_keep_the_input_layout_and_wcs(mef_run):
    mask = mef_run["mask"]
    for kind in ("CLEANED", "BACKGROUND", "BACKGROUND_RMS"):
        out = mef_run[kind]
        assert len(out) == len(mask) == 4                            # the table keeps its place
        assert out[0].data is None
        assert out[3].data is None and out[3].header["MM_EMPTY"] == "BINTABLE"
        assert mask[3].header.tostring() == out[3].header.tostring()  # the mask's placeholder
        for n in (1, 2):
            hdr = out[n].header
            assert out[n].data.shape == mef_run["input"][n].data.shape
            assert out[n].data.dtype == np.dtype(">f4") and "BZERO" not in hdr
            assert hdr["EXTNAME"] == mef_run["input"][n].header["EXTNAME"]
            assert {k: hdr[k] for k in WCS} == WCS
            assert hdr["MM_CHECK"] == kind and hdr["MM_VERS"] and "MP_CR" not in hdr
        assert inputs.is_output_file(out.filename())                 # a later run skips it


def test_masks_are_the_same_with_check_images(mef_run):
    for n in (1, 2):
        assert np.array_equal(mef_run["mask"][n].data, mef_run["plain"][n].data)


def test_background_maps_are_the_normalisation_maps(mef_run):
    for n in (1, 2):
        data = mef_run["input"][n].data.astype(np.float32)
        level, sigma = kernels.estimate_background(data, 200)
        assert np.array_equal(mef_run["BACKGROUND"][n].data, level)
        assert np.array_equal(mef_run["BACKGROUND_RMS"][n].data, sigma)
        assert mef_run["BACKGROUND"][n].header["MM_BACKS"] == 200


def test_cleaned_changes_only_flagged_pixels(mef_run):
    total = 0
    for n in (1, 2):
        data = mef_run["input"][n].data.astype(np.float32)
        cleaned = mef_run["CLEANED"][n].data.astype(np.float32)
        hdr = mef_run["CLEANED"][n].header
        flagged = (mef_run["mask"][n].data & CLEAN_BITS) != 0
        total += flagged.sum()
        # every pixel not flagged by a cleaned class is the input's, bit for bit
        assert np.array_equal(cleaned[~flagged].view(np.uint32), data[~flagged].view(np.uint32))
        expected, left = kernels.inpaint(data, flagged, checkimages.INPAINT_METHOD, 8,
                                         checkimages.INPAINT_MIN_VALID)
        assert np.array_equal(cleaned, expected)
        assert hdr["MM_NCLN"] + hdr["MM_NLEFT"] == flagged.sum() and hdr["MM_NLEFT"] == left
        assert hdr["MM_CLEAN"] == "CR,HCL,DCL,HP,DP" and hdr["GAIN"] == 1.7   # full header
    assert total > 20, "the fields must have flagged cosmic rays and hot pixels"


def test_preview_colours_and_legend(mef_run):
    png = Image.open(mef_run["PREVIEW"])
    legend = png.text["Legend"].splitlines()
    masks = [mef_run["mask"][n].data for n in (1, 2)]
    shown = [k for k in range(12)]                                   # the default CLASSES
    assert legend == [f"{ABBREVIATIONS[k]} {preview.CLASSES[k].name}: "
                      f"{sum(int(np.count_nonzero(m & (1 << k))) for m in masks)} px" for k in shown]
    rgb = np.asarray(png.convert("RGB"))
    f, _, origins = preview.layout([m.shape for m in masks])
    assert f == 1
    checked = 0
    for m, (x0, y0) in zip(masks, origins):
        for k in (0, 1, 9):                                          # CR, HCL, SAT
            ys, xs = np.nonzero(m == (1 << k))
            if len(ys):
                colour = preview.CLASS_COLOURS[ABBREVIATIONS[k]]
                assert tuple(rgb[y0 + ys[0], x0 + xs[0]]) == colour
                checked += 1
        ys, xs = np.nonzero(m == 0)
        grey = rgb[y0 + ys[0], x0 + xs[0]]
        assert grey[0] == grey[1] == grey[2]                         # unflagged: the image
    assert checked >= 3


def test_preview_keeps_a_single_pixel_visible_when_shrunk():
    image = np.random.default_rng(0).normal(100, 5, (3000, 5000)).astype(np.float32)
    flags = np.zeros(image.shape, np.int16)
    flags[1234, 4321] = 1 << 3                                       # one hot pixel
    flags[10, 10] = (1 << 0) | (1 << 3)                              # CR and HP: black
    panels = [("big", image, flags)]
    canvas, lines = preview.render(panels, classes=[0, 3])
    f, _, ((x0, y0),) = preview.layout([image.shape])
    assert f == 3 and lines == ["CR cosmic rays: 1 px", "HP hot pixels: 2 px"]
    rgb = np.asarray(canvas)
    assert tuple(rgb[y0 + 1234 // 3, x0 + 4321 // 3]) == preview.CLASS_COLOURS["HP"]
    assert tuple(rgb[y0 + 10 // 3, x0 + 10 // 3]) == preview.SEVERAL_CLASSES
    assert (rgb[y0:y0 + 1000, x0:x0 + 1667] == preview.CLASS_COLOURS["HP"]).all(axis=2).sum() == 1


def test_hdu_selection_and_cube(tmp_path, capsys):
    cube = np.stack([make_field((150, 170), seed=s, saturated=0) for s in (5, 6)])
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube).writeto(path)
    code, _, err = run(capsys, f"{path}[0]", "-CHECKIMAGE_TYPE", "BACKGROUND,PREVIEW")
    assert code == 0, err
    back = fits.getdata(tmp_path / "cube.back0.fits")
    assert back.shape == cube.shape
    assert np.array_equal(back[1], kernels.estimate_background(cube[1], 200)[0])
    assert Image.open(tmp_path / "cube.preview0.png").format == "PNG"


def test_custom_names(tmp_path, capsys):
    path = tmp_path / "a.fits"
    fits.PrimaryHDU(make_field((150, 170), seed=7, saturated=0)).writeto(path)
    code, _, err = run(capsys, path, "-CHECKIMAGE_TYPE", "BACKGROUND_RMS,CLEANED",
                       "-CHECKIMAGE_NAME", f"_rms.fits,{tmp_path / 'clean.fits'}")
    assert code == 0, err
    assert fits.getheader(tmp_path / "a_rms.fits")["MM_CHECK"] == "BACKGROUND_RMS"
    assert fits.getheader(tmp_path / "clean.fits")["MM_CHECK"] == "CLEANED"


def test_existing_check_image_is_not_overwritten(tmp_path, capsys):
    path = tmp_path / "a.fits"
    fits.PrimaryHDU(make_field((150, 170), seed=8, saturated=0)).writeto(path)
    (tmp_path / "a.cleaned.fits").write_bytes(b"keep")
    code, _, err = run(capsys, path, "-CHECKIMAGE_TYPE", "CLEANED")
    assert code == 1 and "a.cleaned.fits" in err and "OVERWRITE" in err
    assert (tmp_path / "a.cleaned.fits").read_bytes() == b"keep"
    assert not (tmp_path / "a.mask.fits").exists()                  # nothing half-done
    code, _, err = run(capsys, path, "-CHECKIMAGE_TYPE", "CLEANED", "-OVERWRITE", "Y")
    assert code == 0 and fits.getheader(tmp_path / "a.cleaned.fits")["MM_CHECK"] == "CLEANED"


@pytest.mark.parametrize("argv, message", [
    (["-CHECKIMAGE_TYPE", "CLEANED,SEGMENTATION"], "CHECKIMAGE_TYPE: list of 1 to 4 distinct"),
    (["-CHECKIMAGE_TYPE", "NONE,CLEANED"], "NONE cannot be combined"),
    (["-CHECKIMAGE_TYPE", "CLEANED,PREVIEW", "-CHECKIMAGE_NAME", ".c.fits"],
     "one name per CHECKIMAGE_TYPE expected, got 1 name for 2 types"),
    (["-CHECKIMAGE_TYPE", "CLEANED", "-CHECKIMAGE_NAME", "/no/such/dir/c.fits"],
     "cannot write CLEANED to /no/such/dir/c.fits: directory /no/such/dir does not exist"),
    (["-CHECKIMAGE_TYPE", "PREVIEW", "-CHECKIMAGE_NAME", ".p.fits"], "must end with .png"),
    (["-CHECKIMAGE_TYPE", "CLEANED", "-CHECKIMAGE_NAME", ".mask.fits"], "OUTPUT_SUFFIX"),
    (["-CLEAN_CLASSES", "CR,BBG"], "CLEAN_CLASSES: list of 1 to 12 distinct values among"),
])
def test_bad_check_image_configuration(tmp_path, capsys, argv, message):
    path = tmp_path / "a.fits"
    fits.PrimaryHDU(np.ones((40, 40), np.float32)).writeto(path)
    err = one_line_error(capsys, path, *argv)
    assert message in err
    assert sorted(os.listdir(tmp_path)) == ["a.fits"]


def test_unwritable_and_shared_names(tmp_path, capsys):
    for name in "ab":
        fits.PrimaryHDU(np.ones((40, 40), np.float32)).writeto(tmp_path / f"{name}.fits")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):                               # (root writes anywhere)
        err = one_line_error(capsys, tmp_path / "a.fits", "-CHECKIMAGE_TYPE", "CLEANED",
                             "-CHECKIMAGE_NAME", f"{locked}/c.fits")
        assert "is not writable" in err
    err = one_line_error(capsys, tmp_path / "a.fits", "-CHECKIMAGE_TYPE", "CLEANED",
                         "-CHECKIMAGE_NAME", str(tmp_path))
    assert "must end with .fits" in err
    err = one_line_error(capsys, tmp_path / "a.fits", tmp_path / "b.fits",
                         "-CHECKIMAGE_TYPE", "CLEANED", "-CHECKIMAGE_NAME", "c.fits")
    assert "c.fits is one file for 2 inputs" in err
    assert sorted(os.listdir(tmp_path)) == ["a.fits", "b.fits", "locked"]


def test_preview_without_pillow_says_so(tmp_path, capsys, monkeypatch):
    fits.PrimaryHDU(np.ones((40, 40), np.float32)).writeto(tmp_path / "a.fits")
    monkeypatch.setitem(sys.modules, "PIL", None)                    # import PIL fails
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    err = one_line_error(capsys, tmp_path / "a.fits", "-CHECKIMAGE_TYPE", "PREVIEW")
    assert "PREVIEW needs Pillow: pip install 'maximask[plot]'" in err
    assert sorted(os.listdir(tmp_path)) == ["a.fits"]
