"""maxieval's sampling (issue 21): classes drawn per sample (INJECT_PROB), seeds from the
input's name, GAIN/RDNOISE in the sample headers, CR_SOURCE and TRAIL_STYLE; the same
options in maxitrain's samples."""
import os

import numpy as np
import pytest
from astropy.io import fits

from maximask.classes import ABBREVIATIONS
from maximask.cli import main_eval
from maximask.config import ConfigError
from maximask.keywords import TRAIN_KEYWORDS
from maximask.evaluation.pipeline import input_key
from maximask.simulation import inject
from maximask.simulation.synthetic import clean_field
from maximask.training.samples import CleanField, SampleSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECAM = os.path.join(ROOT, "tests", "data", "decam_ooi_z_N2.fits")
FAST = ["-SAMPLE_SIZE", "96", "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "1000", "-VERBOSE_TYPE", "QUIET",
        "-IGNORE_FLAGGED", "N"]


def run(capsys, *argv):
    code = main_eval([str(a) for a in argv])
    return (code,) + capsys.readouterr()


def headers(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with fits.open(folder / name) as hdul:
            out[name] = (hdul[0].header.copy(), hdul[0].data.copy())
    return out


def test_classes_drawn_per_sample_or_all(tmp_path, capsys):
    for prob in ("0.5", "1"):
        (tmp_path / prob).mkdir()
        code, _, err = run(capsys, DECAM, *FAST, "-NSAMPLES", "6", "-INJECT_PROB", prob,
                           "-SAMPLES_DIR", tmp_path / prob, "-OUTPUT_NAME", tmp_path / f"ev{prob}")
        assert code == 0, err
    drawn = [h["MV_CLASS"].split(",") for h, _ in headers(tmp_path / "0.5").values()]
    every = [h["MV_CLASS"].split(",") for h, _ in headers(tmp_path / "1").values()]
    assert all(c == list(ABBREVIATIONS[:12]) for c in every)
    assert all(0 < len(c) < 12 for c in drawn) and len({",".join(c) for c in drawn}) > 1
    assert all(set(c) <= set(ABBREVIATIONS[:12]) for c in drawn)
    for header, image in headers(tmp_path / "0.5").values():  # a sample is its classes' simulation
        assert header["MV_TRAIL"] == "REAL" and header["MV_CRSRC"] == "BUILTIN"
        clean = fits.getdata(DECAM, 1)[header["MV_Y0"]:header["MV_Y0"] + 96, header["MV_X0"]:header["MV_X0"] + 96]
        again, _ = inject(clean, classes=header["MV_CLASS"], seed=header["MV_SEED"], trail_style="real")
        np.testing.assert_array_equal(image, again)
        # the DECam cutout has no GAIN/RDNOISE: the simulator's noise model (sky / sigma^2, 0 e-)
        assert header["GAIN"] > 0 and header["RDNOISE"] >= 0 and "model" in header.comments["GAIN"]


def test_seeds_follow_the_inputs_name_not_its_place(tmp_path, capsys):
    other = tmp_path / "other.fits"
    fits.PrimaryHDU(clean_field((120, 130), seed=1, fwhm=3.0, sky=300.0)).writeto(other)
    for folder, inputs in (("alone", [DECAM]), ("second", [other, DECAM])):
        (tmp_path / folder).mkdir()
        code, _, err = run(capsys, *inputs, *FAST, "-NSAMPLES", "2", "-SAMPLES_DIR", tmp_path / folder,
                           "-OUTPUT_NAME", tmp_path / f"ev_{folder}")
        assert code == 0, err
    alone, second = headers(tmp_path / "alone"), headers(tmp_path / "second")
    decam = [n for n in alone if n.startswith("decam")]
    assert len(decam) == 2 and len(second) == 4
    for name in decam:
        assert alone[name][0]["MV_SEED"] == second[name][0]["MV_SEED"]
        np.testing.assert_array_equal(alone[name][1], second[name][1])
    assert input_key("/a/b/x.fits[1]") == input_key("x.fits[1]") != input_key("x.fits[2]")


def test_gain_and_read_noise_from_the_input_header(tmp_path, capsys):
    path = tmp_path / "field.fits"
    header = fits.Header({"GAIN": 1.7, "RDNOISE": 4.5})
    fits.PrimaryHDU(clean_field((100, 110), seed=2, fwhm=3.0, sky=400.0), header).writeto(path)
    (tmp_path / "s").mkdir()
    code, _, err = run(capsys, path, *FAST, "-NSAMPLES", "1", "-SAMPLES_DIR", tmp_path / "s",
                       "-OUTPUT_NAME", tmp_path / "ev")
    assert code == 0, err
    (h, _), = headers(tmp_path / "s").values()
    assert (h["GAIN"], h["RDNOISE"]) == (1.7, 4.5) and "input header" in h.comments["RDNOISE"]


def test_real_cosmic_rays_in_maxieval(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    code, _, err = run(capsys, DECAM, *FAST, "-NSAMPLES", "1", "-INJECT_CLASSES", "CR", "-CR_SOURCE", "IMSIM",
                       "-SAMPLES_DIR", tmp_path / "s", "-OUTPUT_NAME", tmp_path / "ev")
    assert code == 0, err
    (h, image), = headers(tmp_path / "s").values()
    assert h["MV_CRSRC"] == "IMSIM" and h["MV_CLASS"] == "CR"
    clean = fits.getdata(DECAM, 1)[h["MV_Y0"]:h["MV_Y0"] + 96, h["MV_X0"]:h["MV_X0"] + 96]
    again, truth = inject(clean, classes="CR", seed=h["MV_SEED"], cosmic_source="imsim")
    np.testing.assert_array_equal(image, again)


@pytest.mark.parametrize("argv,message", [
    (["-CR_SOURCE", "DARKS"], "maxieval: CR_SOURCE: DARKS needs DARK_FRAMES"),
    (["-CR_SOURCE", "IMSIM", "-DARK_FRAMES", "d.fits"],
     "maxieval: CR_SOURCE: IMSIM with DARK_FRAMES given; set CR_SOURCE DARKS or AUTO"),
    (["-INJECT_PROB", "0"], "maxieval: command line: INJECT_PROB: number in (0,1] expected, got \"0\""),
    (["-TRAIL_STYLE", "SMOOTH"], "maxieval: command line: TRAIL_STYLE: one of PAPER, REAL expected, got \"SMOOTH\""),
])
def test_bad_sampling_keywords_give_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, DECAM, "-OUTPUT_NAME", tmp_path / "ev", *argv)
    assert code == 2
    assert err.strip().splitlines()[-1] == message
    assert os.listdir(tmp_path) == []


def test_training_samples_take_the_new_recipes():
    fields = [CleanField.from_array(f"f{i}", clean_field((200, 200), seed=i, fwhm=3.0, sky=300.0), fwhm=3.0)
              for i in range(2)]
    plain = SampleSet(fields, 96, classes="CR,TRL", focus=["CR", "TRL"], seed=1, rebin=False)
    real = SampleSet(fields, 96, classes="CR,TRL", focus=["CR", "TRL"], seed=1, rebin=False,
                     trail_style="real", cosmic_source="imsim")
    x0, t0, _ = plain.sample(0)
    x1, t1, _ = real.sample(0)
    assert t1[ABBREVIATIONS.index("CR")].any() and not np.array_equal(t0, t1)
    values = dict(TRAIN_KEYWORDS.default_values(), CR_SOURCE="DARKS")
    with pytest.raises(ConfigError, match="DARKS needs DARK_FRAMES"):
        TRAIN_KEYWORDS.check(values)
    assert TRAIN_KEYWORDS.default_values()["TRAIL_STYLE"] == "PAPER"  # training keeps the paper's trails
