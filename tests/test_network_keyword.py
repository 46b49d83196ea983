"""-NETWORK: both commands run a model directory written by maximask.training.export."""
import json

import numpy as np
import pytest
import torch
from astropy.io import fits

from maximask.cli import main_mask, main_track
from maximask.engine import PACKAGED_WEIGHTS_SHA256
from maximask.synthetic import make_field
from maximask.training import load_network
from maximask.training.export import export_network


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
    dirs = {"copy": root / "copy", "tuned": root / "tuned", "track": root / "track"}
    info = {"copy": export_network(load_network("maximask"), dirs["copy"]),
            "tuned": export_network(tuned("maximask"), dirs["tuned"]),
            "track": export_network(tuned("maxitrack"), dirs["track"])}
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


def test_maxitrack_runs_the_model_directory_and_says_so(model_dirs, tmp_path, monkeypatch, capsys):
    dirs, info = model_dirs
    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(make_field((420, 410), seed=4)).writeto("t.fits")
    scores = {}
    for name, extra in (("packaged", []), ("track", ["-NETWORK", str(dirs["track"])])):
        assert main_track(["t.fits", "-OUTPUT_TYPE", "JSON", "-OUTPUT_NAME", f"{name}.json",
                           "-VERBOSE_TYPE", "QUIET", *extra]) == 0
        with open(f"{name}.json") as f:
            scores[name] = json.load(f)
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
