"""-NETWORK: both commands run a model directory written by maximask.training.export."""
import json

import numpy as np
import pytest
import torch
from astropy.io import fits

from maximask.classes import ABBREVIATIONS, DEFAULT_PRIORS, NCLASSES
from maximask.cli import main_mask, main_track
from maximask.keywords import MASK_KEYWORDS
from maximask.engine import PACKAGED_WEIGHTS_SHA256
from maximask.kernels import prior_factors
from maximask.simulation.synthetic import make_field
from maximask.training import load_network
from maximask.training.export import export_network


MASK_TRAINING_PRIORS = np.linspace(0.02, 0.4, NCLASSES)


def tuned(name):
    """The packaged network with its last layer changed, so that its outputs change."""
    module = load_network(name)
    with torch.no_grad():
        if name == "maximask":
            module.conv2d_27.weight.mul_(1.05)
        else:
            module.dense_2.bias[1] += 3.0  # towards "tracking error"
    return module


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("networks")
    dirs = {name: root / name for name in ("copy", "tuned", "track", "mask_priors", "track_priors")}
    info = {"copy": export_network(load_network("maximask"), dirs["copy"]),
            "tuned": export_network(tuned("maximask"), dirs["tuned"]),
            "track": export_network(tuned("maxitrack"), dirs["track"]),
            "mask_priors": export_network(load_network("maximask"), dirs["mask_priors"],
                                          metadata={"training_priors": list(MASK_TRAINING_PRIORS)}),
            "track_priors": export_network(load_network("maxitrack"), dirs["track_priors"],
                                           metadata={"training_priors": 0.2})}
    return dirs, info


def mask(capsys, tmp_path, name, *options):
    """Run maximask (PROBA) on one field into tmp_path/name/; (exit code, stderr, output path)."""
    image = tmp_path / "field.fits"
    if not image.exists():
        fits.PrimaryHDU(make_field((200, 230), seed=3, saturated=1)).writeto(image)
    (tmp_path / name).mkdir()
    code = main_mask([str(image), "-OUTPUT_TYPE", "PROBA", "-OUTPUT_DIR", str(tmp_path / name),
                      "-VERBOSE_TYPE", "QUIET", *map(str, options)])
    return code, capsys.readouterr().err, tmp_path / name / "field.mask.fits"


def test_maximask_runs_the_model_directory_and_says_so(model_dirs, tmp_path, capsys):
    dirs, info = model_dirs
    results = {}
    for name, extra in (("packaged", ()), ("copy", ("-NETWORK", dirs["copy"])),
                        ("tuned", ("-NETWORK", dirs["tuned"]))):
        code, err, output = mask(capsys, tmp_path, name, *extra)
        assert code == 0, err
        with fits.open(output) as hdul:
            results[name] = (hdul[0].data.copy(), hdul[0].header)
    data, header = results["packaged"]
    assert header["MM_MODEL"] == "MaxiMask 1.4.1" and header["MM_WSHA"] == PACKAGED_WEIGHTS_SHA256["maximask"][:16]
    for name in ("copy", "tuned"):
        assert results[name][1]["MM_MODEL"] == str(dirs[name])
        assert results[name][1]["MM_WSHA"] == info[name]["weights_sha256"][:16]
    # the published weights re-exported give the packaged output; changed weights change it
    assert np.array_equal(results["copy"][0], data)
    assert np.abs(results["tuned"][0] - data).max() > 1e-3


def test_maximask_refuses_an_unusable_network_before_any_file(model_dirs, tmp_path, capsys):
    dirs, _ = model_dirs
    for k, (network, message) in enumerate((
            (tmp_path / "nowhere", "cannot read model.json (No such file or directory)"),
            (dirs["track"], "model.json describes network maxitrack, not maximask"))):
        code, err, output = mask(capsys, tmp_path, f"bad{k}", "-NETWORK", network)
        assert code == 2
        assert err == f"maximask: model directory {network}: {message}\n"
        assert not output.exists()


def track(tmp_path, name, network=""):
    """Run maxitrack (JSON) on a guided field with NETWORK `network`; the output's content."""
    image = tmp_path / "t.fits"
    if not image.exists():
        fits.PrimaryHDU(make_field((420, 410), seed=4)).writeto(image)
    output = tmp_path / f"{name}.json"
    assert main_track([str(image), "-OUTPUT_TYPE", "JSON", "-OUTPUT_NAME", str(output), "-VERBOSE_TYPE", "QUIET",
                       "-NETWORK", str(network)]) == 0
    with open(output) as f:
        return json.load(f)


def test_maxitrack_runs_the_model_directory_and_says_so(model_dirs, tmp_path, monkeypatch, capsys):
    dirs, info = model_dirs
    monkeypatch.chdir(tmp_path)
    scores = {"packaged": track(tmp_path, "packaged"), "track": track(tmp_path, "track", dirs["track"])}
    assert scores["packaged"]["networks"] == "MaxiMask 1.4.1"
    assert scores["packaged"]["weights_sha256"] == PACKAGED_WEIGHTS_SHA256["maxitrack"]
    assert scores["track"]["networks"] == str(dirs["track"])
    assert scores["track"]["weights_sha256"] == info["track"]["weights_sha256"]
    # the bias added to the error logit multiplies the odds of every (guided, tiny-p) tile by e^3
    ratio = scores["track"]["scores"][0]["score"] / scores["packaged"]["scores"][0]["score"]
    assert ratio == pytest.approx(np.exp(3.0), rel=1e-3)

    code = main_track(["t.fits", "-NETWORK", str(dirs["copy"]), "-OUTPUT_NAME", "bad.out"])
    assert code == 2
    assert capsys.readouterr().err.endswith(
        f"maxitrack: model directory {dirs['copy']}: model.json describes network maximask, not maxitrack\n")


def test_prior_correction_uses_the_model_directorys_training_priors(model_dirs, tmp_path, capsys):
    dirs, _ = model_dirs
    # the network's probabilities alone: the trail stage would set TRL to 1 on its segments
    code, err, raw_path = mask(capsys, tmp_path, "raw", "-PRIOR_CORRECTION", "N", "-TRAIL_SEARCH", "N")
    assert code == 0, err
    code, err, path = mask(capsys, tmp_path, "priors", "-NETWORK", dirs["mask_priors"], "-TRAIL_SEARCH", "N")
    assert code == 0, err
    with fits.open(raw_path) as a, fits.open(path) as b:
        raw, corrected = a[0].data.astype(np.float64), b[0].data
    classes = sorted(ABBREVIATIONS.index(a) for a in MASK_KEYWORDS.defaults().CLASSES)  # the PROBA planes
    factors = prior_factors(DEFAULT_PRIORS, MASK_TRAINING_PRIORS).astype(np.float64)[classes, None, None]
    np.testing.assert_allclose(corrected, raw / (raw + factors * (1 - raw)), rtol=0, atol=2e-6)


def test_maxitrack_prior_correction_uses_the_model_directorys_training_prior(model_dirs, tmp_path):
    dirs, _ = model_dirs
    scores = {name: track(tmp_path, name, network)["scores"][0]["score"]
              for name, network in (("packaged", ""), ("priors", dirs["track_priors"]))}
    # F = t/(1-t) (1-u)/u: trained on 20% errors rather than 50%, tiny p grow by 1/(0.2/0.8) = 4
    assert scores["priors"] / scores["packaged"] == pytest.approx(4.0, rel=1e-3)


@pytest.mark.parametrize("priors, message", [
    ([0.1] * 13, "training_priors [0.1, 0.1"), ([0.1] * 13 + [1.0], "14 numbers in (0,1) expected"),
    ("many", "training_priors 'many': 14 numbers in (0,1) expected")])
def test_bad_training_priors_are_refused_in_one_line(model_dirs, tmp_path, capsys, priors, message):
    dirs, info = model_dirs
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in info["copy"]["files"]:
        (bad / f).symlink_to(dirs["copy"] / f)
    (bad / "model.json").write_text(json.dumps({**info["copy"], "training_priors": priors}))
    code, err, _ = mask(capsys, tmp_path, "out", "-NETWORK", bad)
    assert code == 2 and err.startswith(f"maximask: model directory {bad}: model.json ") and message in err
    assert err.count("\n") == 1
