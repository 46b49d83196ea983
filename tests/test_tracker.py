"""MaxiTrack scoring and the maxitrack command against the reference MaxiTrack 1.4.1."""
import json
import os

import numpy as np
import pytest
from astropy.io import fits

import maximask
from maximask.cli import main_track
from maximask.config import dump
from maximask.keywords import TRACK_KEYWORDS
from maximask.tracker import Tracker, track_origins

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tracker():
    return maximask.Tracker(verbose_type="QUIET")


def test_scores_match_the_reference_on_whole_images(track_ref, tracker):
    ours = [tracker.score(track_ref["guided"]), tracker.score(track_ref["marginal"])]
    np.testing.assert_allclose(ours, track_ref["scores"], atol=1.5e-3)
    assert 0.2 < track_ref["scores"][1] < 0.8  # a score that the prior correction really shapes


def test_tiles_are_anchored_as_the_reference():
    origins = track_origins(850, 830)
    assert origins.tolist() == [[50, 30], [50, 430], [450, 30], [450, 430]]
    assert track_origins(300, 1000).tolist() == [[0, 200], [0, 600]]


def test_prior_correction_and_partial_batches(track_ref):
    field = np.concatenate([track_ref["guided"], track_ref["marginal"]], axis=1)  # 850 x 1660: 8 tiles
    raw = maximask.Tracker(prior=0.5, batch_size=3, verbose_type="QUIET").tile_scores(field)
    whole = maximask.Tracker(prior=0.5, batch_size=8, verbose_type="QUIET").tile_scores(field)
    np.testing.assert_allclose(raw, whole, atol=1e-6)  # batches of 3: the last one is partial
    corrected = maximask.Tracker(prior=0.05, batch_size=3, verbose_type="QUIET").tile_scores(field)
    np.testing.assert_allclose(corrected, raw / (raw + 19 * (1 - raw)), rtol=1e-6, atol=1e-12)


def test_images_shorter_than_min_side_get_no_score(track_ref, tracker):
    assert np.isnan(tracker.score(track_ref["marginal"][:250, :300]))
    assert np.isnan(tracker.score(track_ref["guided"][:5, :800]))
    score = tracker.score(track_ref["marginal"][:300, :350])  # padded, but scored
    assert 0.0 <= score <= 1.0


def test_cube_planes_are_scored_apart(track_ref, tracker):
    cube = np.stack([track_ref["guided"][:400, :400], track_ref["marginal"][450:, 430:]]).astype(np.float32)
    scores = tracker.score(cube)
    assert scores.shape == (2,)
    assert scores[0] == pytest.approx(tracker.score(cube[0]))
    assert scores[1] == pytest.approx(tracker.score(cube[1]))


def test_default_track_file_is_what_dash_d_prints(capsys):
    assert main_track(["-d"]) == 0
    out = capsys.readouterr().out
    with open(os.path.join(ROOT, "config", "default.track")) as f:
        assert f.read() == out == dump(TRACK_KEYWORDS)


def test_command_writes_one_line_per_file_and_cube_plane(track_ref, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g, m = track_ref["guided"].astype(np.float32), track_ref["marginal"].astype(np.float32)
    fits.PrimaryHDU(m).writeto("one.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(g), fits.ImageHDU(m)]).writeto("mef.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.stack([g[:400, :400], m[:400, :400]]))]).writeto("cube.fits")
    code = main_track(["one.fits", "mef.fits", "cube.fits", "-VERBOSE_TYPE", "QUIET"])
    assert code == 0, capsys.readouterr().err
    lines = open("maxitrack.out").read().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert any("PRIOR 0.05" in line for line in header) and any("SCORE" in line for line in header)
    assert [r[0] for r in rows] == ["one.fits", "mef.fits", "cube.fits[1][0]", "cube.fits[1][1]"]
    scores = {r[0]: float(r[1]) for r in rows}
    assert scores["one.fits"] == pytest.approx(track_ref["scores"][1], abs=1.5e-3)
    assert scores["mef.fits"] == pytest.approx(np.mean(track_ref["scores"]), abs=1.5e-3)  # 2-D HDUs averaged


def test_json_output_and_frac_reproducibility(track_ref, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiles = [track_ref["guided"][:400, :400], track_ref["marginal"][:400, :400], track_ref["marginal"][450:, 430:],
             track_ref["guided"][450:, 430:]]
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(t.astype(np.float32)) for t in tiles]).writeto("m.fits")

    def run(seed):
        assert main_track(["m.fits", "-FRAC", "0.5", "-SEED", str(seed), "-OUTPUT_TYPE", "JSON",
                           "-VERBOSE_TYPE", "QUIET", "-OUTPUT_NAME", f"s{seed}.json", "-OVERWRITE", "Y"]) == 0
        out = json.load(open(f"s{seed}.json"))
        assert out["frac"] == 0.5 and out["prior"] == 0.05
        (entry,) = out["scores"]
        return [h["hdu"] for h in entry["hdus"]]

    first = run(3)
    assert len(first) == 2 and first == run(3)  # same seed, same HDUs
    assert len({tuple(run(s)) for s in range(8)}) > 1  # the seed does choose


def test_bad_input_and_keywords(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(np.zeros((500, 500), np.float32)).writeto("zero.fits")
    assert main_track(["zero.fits", "missing.fits", "-VERBOSE_TYPE", "QUIET"]) == 1
    err = capsys.readouterr().err
    assert "zero.fits" in err and "missing.fits" in err and "Traceback" not in err
    assert main_track(["zero.fits", "-PRIOR", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PRIOR" in err and "1.5" in err
    assert main_track(["zero.fits", "-FRACTION", "0.5"]) == 2
    assert "FRAC" in capsys.readouterr().err


def test_unwritable_output_fails_in_one_line(track_ref, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(track_ref["guided"][:400, :400].astype(np.float32)).writeto("one.fits")
    assert main_track(["one.fits", "-VERBOSE_TYPE", "QUIET", "-OUTPUT_NAME", "nowhere/scores.txt"]) == 2
    err = capsys.readouterr().err
    assert err == "maxitrack: OUTPUT_NAME nowhere/scores.txt: output directory does not exist\n"
    assert sorted(os.listdir(".")) == ["one.fits"]


def test_mef_with_an_all_zero_hdu_scores_the_others(track_ref, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    guided = track_ref["guided"][:400, :400].astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((400, 400), np.float32)),
                  fits.ImageHDU(guided)]).writeto("mef.fits")
    assert main_track(["mef.fits", "-OUTPUT_TYPE", "JSON"]) == 0
    err = capsys.readouterr().err
    assert "maxitrack: mef.fits[1]: all pixels are zero: not scored" in err.splitlines()
    with open("maxitrack.out") as f:
        entry = json.load(f)["scores"][0]
    assert [h["hdu"] for h in entry["hdus"]] == ["mef.fits[2]"]
    assert entry["score"] == pytest.approx(Tracker().score(guided))


def test_strip_smaller_than_min_side_has_no_score_and_says_so(track_ref, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(np.tile(track_ref["guided"][:5, :], (1, 4))[:, :3000].astype(np.float32)).writeto(
        "strip.fits")
    assert main_track(["strip.fits"]) == 0
    assert ("maxitrack: strip.fits[0]: 5x3000 pixels, too small to score (both sides >= 300 px "
            "needed): no score") in capsys.readouterr().err.splitlines()
    assert open("maxitrack.out").read().splitlines()[-1] == "strip.fits nan"
    assert main_track(["strip.fits", "-OUTPUT_TYPE", "JSON", "-OUTPUT_NAME", "s.json"]) == 0
    assert json.load(open("s.json"))["scores"][0]["score"] is None


def test_unwritable_output_name_is_found_before_any_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Tracker, "score_file", None)  # scoring a file would crash
    image = tmp_path / "x.fits"
    fits.PrimaryHDU(np.ones((400, 400), np.float32)).writeto(image)
    assert main_track([str(image), "-OUTPUT_NAME", "/proc/scores.txt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maxitrack: OUTPUT_NAME /proc/scores.txt: cannot create files") and err.count("\n") == 1
