"""The maxitrain command: configuration, bad input, the model directory it writes, its use
by maximask/maxitrack/maxieval, and resuming after a kill."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits

from maximask.classes import ABBREVIATIONS, DEFAULT_THRESHOLDS
from maximask.cli import main_eval, main_mask, main_track, main_train
from maximask.config import dump
from maximask.keywords import TRAIN_KEYWORDS
from maximask.engine import PACKAGED_WEIGHTS_SHA256, EngineError, model_info
from conftest import write_clean_fields
from maximask.simulation.synthetic import make_field

TINY = ["-SAMPLE_SIZE", "64", "-NSAMPLES", "8", "-NVALID", "4", "-BATCH_SIZE", "2", "-VALID_STEP", "2",
        "-INJECT_CLASSES", "CR,HCL,TRL,SAT", "-VERBOSE_TYPE", "QUIET"]


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Three clean fields (FITS) and a label list of two 420x420 exposures for MaxiTrack."""
    root = tmp_path_factory.mktemp("fields")
    paths = write_clean_fields(root)
    for i in range(2):
        fits.PrimaryHDU(make_field((420, 420), seed=10 + i)).writeto(root / f"exposure{i}.fits")
    (root / "labels.txt").write_text(f"# file label\n{root}/exposure0.fits 0\n{root}/exposure1.fits 1  # trailed\n")
    return root, paths


def train(capsys, *args):
    code = main_train([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(fields, tmp_path_factory):
    """A MaxiMask model directory from a 3-step run (module-wide: training is the slow part)."""
    model = tmp_path_factory.mktemp("models") / "tiny.model"
    assert main_train([*fields[1], *TINY, "-STEPS", "3", "-OUTPUT_NETWORK", str(model)]) == 0
    return model, json.loads((model / "model.json").read_text())


def test_dump_lists_the_training_keywords(capsys):
    assert main_train(["-d"]) == 0
    text = capsys.readouterr().out
    assert text == dump(TRAIN_KEYWORDS)
    for keyword in ("OUTPUT_NETWORK", "STEPS", "DEVICE", "TRAIN_LAYERS", "REGULARISATION", "FOCUS_CLASSES"):
        assert f"\n{keyword} " in text
    assert "AUX_LOSSES" not in text
    assert main_train(["-dd"]) == 0 and "\nAUX_LOSSES " in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["-STEPZ", "3"], "STEPZ"),
    (["-STEPS", "0"], "STEPS"),
    (["-REGULARISATION", "L1"], "REGULARISATION"),
    (["-FOCUS_CLASSES", "FR"], "FOCUS_CLASSES: FR not in INJECT_CLASSES"),
    (["-TRAIN_LAYERS", "conv2d_99"], "TRAIN_LAYERS: layer conv2d_99 unknown"),
    (["-NETWORK", "/nonexistent/model"], "model directory /nonexistent/model: cannot read model.json"),
])
def test_bad_configuration_is_one_line_and_exit_2(fields, tmp_path, capsys, args, message):
    code, err = train(capsys, *fields[1], *TINY, "-STEPS", "1", "-OUTPUT_NETWORK", tmp_path / "m", *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("maxitrain: ") and message in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.ckpt").exists()


def test_unreadable_model_directories_exit_2(fields, tmp_path, capsys, trained):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    code, err = train(capsys, *fields[1], "-NETWORK", broken, "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and err.count("\n") == 1 and "model.json is not valid JSON" in err
    # a MaxiMask model given to train MaxiTrack
    code, err = train(capsys, fields[0] / "labels.txt", "-TRAIN_NETWORK", "MAXITRACK", "-NETWORK", trained[0],
                      "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and err.count("\n") == 1 and "describes network maximask, not maxitrack" in err


def test_an_existing_model_directory_is_never_replaced(fields, trained, capsys):
    model = trained[0]
    before = sorted(os.listdir(model))
    code, err = train(capsys, *fields[1], "-OUTPUT_NETWORK", model)
    assert code == 2 and "already exists; a model directory is never replaced" in err
    assert sorted(os.listdir(model)) == before


def test_fewer_than_two_images_cannot_be_split(fields, tmp_path, capsys):
    code, err = train(capsys, fields[1][0], *TINY, "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and "at least 2 are needed, one kept apart for validation" in err


def test_an_unreadable_input_trains_nothing(fields, tmp_path, capsys):
    code, err = train(capsys, *fields[1], tmp_path / "missing.fits", *TINY, "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and "missing.fits: no such file" in err and "nothing done" in err
    assert not (tmp_path / "m").exists()


def test_model_json_describes_the_run(trained, fields):
    model, info = trained
    assert info["network"] == "maximask" and info["software"].startswith("maximask ")
    assert info["base_model"] == {"label": "MaxiMask 1.4.1", "weights_sha256": PACKAGED_WEIGHTS_SHA256["maximask"]}
    assert info["weights_sha256"] != PACKAGED_WEIGHTS_SHA256["maximask"]  # the weights moved
    data = info["data"]
    assert len(data["images"]["training"]) == 2 and len(data["images"]["validation"]) == 1
    assert data["samples"] == 8 and data["validation_samples"] == 4 and data["sample_size"] == 64
    assert data["inject_classes"] == ["CR", "HCL", "TRL", "SAT"] and set(data["class_fractions"]) == set(ABBREVIATIONS)
    assert info["training"]["steps"] == 3 and info["training"]["regularisation"] == "PUBLISHED"
    assert [r["step"] for r in info["losses"]["train"]] == [2, 3]
    assert all(np.isfinite(r["valid_total"]) and np.isfinite(r["total"]) for r in info["losses"]["train"])
    assert len(info["training_priors"]) == 14 and all(0 < p < 1 for p in info["training_priors"])
    assert len(info["thresholds"]) == 14 and all(0 <= t <= 1 for t in info["thresholds"])
    absent = [k for k, a in enumerate(ABBREVIATIONS) if a not in info["validation"]]
    assert absent and all(info["thresholds"][k] == DEFAULT_THRESHOLDS[k] for k in absent)  # nothing to tune on
    assert sorted(os.listdir(model)) == ["LICENSE", "maximask.onnx", "maximask.weights", "maximask_cuda.onnx",
                                         "model.json"]
    assert not os.path.exists(str(model) + ".ckpt")  # removed once the model is complete


def test_maximask_uses_the_models_thresholds_unless_told_otherwise(trained, tmp_path, capsys):
    model, info = trained
    image = tmp_path / "field.fits"
    fits.PrimaryHDU(make_field((200, 200), seed=4)).writeto(image)
    assert main_mask([str(image), "-NETWORK", str(model), "-OUTPUT_DIR", str(tmp_path), "-VERBOSE_TYPE", "QUIET"]) == 0
    header = fits.getheader(tmp_path / "field.mask.fits")
    assert header["MM_MODEL"] == str(model) and header["MM_WSHA"] == info["weights_sha256"][:16]
    assert header["CR_TH"] == pytest.approx(info["thresholds"][0])
    assert header["TRL_TH"] == pytest.approx(info["thresholds"][ABBREVIATIONS.index("TRL")])
    chosen = ",".join(["0.5"] * 14)
    assert main_mask([str(image), "-NETWORK", str(model), "-THRESHOLDS", chosen, "-OUTPUT_DIR", str(tmp_path),
                      "-OVERWRITE", "Y", "-VERBOSE_TYPE", "QUIET"]) == 0
    assert fits.getheader(tmp_path / "field.mask.fits")["CR_TH"] == 0.5


def test_bad_thresholds_in_model_json_are_refused(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained[0], copy)
    info = json.loads((copy / "model.json").read_text())
    info["thresholds"] = [2.0] * 14
    (copy / "model.json").write_text(json.dumps(info))
    with pytest.raises(EngineError, match="thresholds"):
        model_info("maximask", str(copy))


def test_maxieval_scores_the_trained_network_with_its_training_priors(trained, fields, tmp_path, capsys):
    model, info = trained
    out = tmp_path / "eval"
    assert main_eval([fields[1][0], "-NETWORK", str(model), "-NSAMPLES", "1", "-SAMPLE_SIZE", "128",
                      "-OUTPUT_NAME", str(out), "-CHECKPLOT_TYPE", "NONE", "-VERBOSE_TYPE", "QUIET"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["networks"] == str(model) and report["weights_sha256"] == info["weights_sha256"]
    assert report["training_priors"] == pytest.approx(info["training_priors"])
    assert report["thresholds"] == pytest.approx(info["thresholds"])


def test_cleaned_check_images_are_clean_fields_but_masks_are_not(fields, tmp_path, capsys):
    image = tmp_path / "raw.fits"
    fits.PrimaryHDU(make_field((200, 200), seed=2)).writeto(image)
    assert main_mask([str(image), "-CHECKIMAGE_TYPE", "CLEANED", "-VERBOSE_TYPE", "QUIET"]) == 0
    cleaned, mask = tmp_path / "raw.cleaned.fits", tmp_path / "raw.mask.fits"
    assert fits.getheader(cleaned)["MM_CHECK"] == "CLEANED"
    code = main_train([str(cleaned), str(mask), *fields[1][:1], *TINY, "-STEPS", "1", "-VERBOSE_TYPE", "NORMAL",
                       "-OUTPUT_NETWORK", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "raw.mask.fits: skipped: a maximask output" in err
    assert "raw.cleaned.fits[0]: 200x200" in err
    # not a terminal: plain progress lines, no bar
    progress = [line for line in err.splitlines() if line.startswith("maxitrain: step ")]
    assert len(progress) == 1 and progress[0].startswith("maxitrain: step 1/1: loss ")
    assert "validation " in progress[0] and " samples/s, ETA 0m00s" in progress[0] and "\r" not in err
    assert json.loads((tmp_path / "m" / "model.json").read_text())["data"]["images"]["validation"] != []


def test_maxitrack_fine_tuning_from_a_label_list(fields, tmp_path, capsys):
    root = fields[0]
    model = tmp_path / "track.model"
    code, err = train(capsys, root / "labels.txt", "-TRAIN_NETWORK", "MAXITRACK", "-NSAMPLES", "4", "-NVALID", "2",
                      "-BATCH_SIZE", "2", "-STEPS", "2", "-VALID_FRAC", "0.5", "-OUTPUT_NETWORK", model,
                      "-VERBOSE_TYPE", "QUIET")
    assert code == 0, err
    info = json.loads((model / "model.json").read_text())
    assert info["network"] == "maxitrack" and 0 < info["training_priors"] < 1
    assert info["data"]["label_fractions"] in ([1.0, 0.0], [0.0, 1.0])  # one image each side of the split
    assert "maxitrack.onnx" in os.listdir(model)
    out = tmp_path / "scores.txt"
    assert main_track([str(root / "exposure1.fits"), "-NETWORK", str(model), "-OUTPUT_NAME", str(out),
                       "-VERBOSE_TYPE", "QUIET"]) == 0
    assert str(model) in out.read_text()


def test_bad_label_lines_are_said_and_nothing_is_trained(fields, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text(f"{fields[0]}/exposure0.fits 0\n{fields[0]}/exposure1.fits yes\n")
    code, err = train(capsys, labels, "-TRAIN_NETWORK", "MAXITRACK", "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2
    assert f"{labels}:2: expected 'file label' with label 0 or 1, got" in err and "nothing done" in err


def test_a_checkpoint_of_another_configuration_is_not_resumed(fields, tmp_path, capsys):
    model = tmp_path / "m"
    assert main_train([*fields[1], *TINY, "-STEPS", "2", "-CHECKPOINT_STEP", "1", "-OUTPUT_NETWORK", str(model),
                       "-CHECKPOINT_NAME", str(tmp_path / "keep.ckpt")]) == 0
    assert not (tmp_path / "keep.ckpt").exists()
    # a checkpoint left by a run of another configuration
    import torch

    from maximask.training import load_network
    from maximask.training.trainer import train as optimise

    net = load_network("maximask")
    x = torch.zeros(1, 1, 32, 32)
    y = torch.zeros(1, 14, 32, 32)
    optimise(net, lambda n, a, b: {"total": n(a).mean()}, lambda s: (x, y), 1, checkpoint=str(tmp_path / "old.ckpt"),
             tag={"other": 1})
    code, err = train(capsys, *fields[1], *TINY, "-STEPS", "2", "-OUTPUT_NETWORK", tmp_path / "m2",
                      "-CHECKPOINT_NAME", tmp_path / "old.ckpt")
    assert code == 2 and "was written by a run of another configuration: remove it or set CHECKPOINT_NAME" in err


def test_a_killed_run_resumes_to_the_uninterrupted_weights(fields, tmp_path):
    """SIGKILL after the first checkpoint; the rerun ends with the weights of a run never killed."""
    common = [*fields[1], *TINY, "-SAMPLE_SIZE", "128", "-STEPS", "8", "-CHECKPOINT_STEP", "2", "-NTHREADS", "1",
              "-SEED", "5"]
    env = dict(os.environ, PYTHONSAFEPATH="1")
    whole = subprocess.run(["maxitrain", *common, "-OUTPUT_NETWORK", str(tmp_path / "whole")], env=env,
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed_model, ckpt = tmp_path / "killed", tmp_path / "killed.ckpt"
    process = subprocess.Popen(["maxitrain", *common, "-OUTPUT_NETWORK", str(killed_model)], env=env,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ckpt.exists() and not killed_model.exists()
    resumed = subprocess.run(["maxitrain", *common, "-OUTPUT_NETWORK", str(killed_model), "-VERBOSE_TYPE", "NORMAL"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint" in resumed.stderr
    a = json.loads((tmp_path / "whole" / "model.json").read_text())
    b = json.loads((killed_model / "model.json").read_text())
    assert b["weights_sha256"] == a["weights_sha256"]
    assert [r["total"] for r in b["losses"]["train"]] == [r["total"] for r in a["losses"]["train"]]


def test_a_cuda_device_pytorch_cannot_see_is_refused(fields, tmp_path, capsys, monkeypatch):
    import torch

    # The case is a machine where PyTorch sees no CUDA device: made so on any machine.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = train(capsys, *fields[1], *TINY, "-DEVICE", "CUDA", "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and err == "maxitrain: DEVICE CUDA: PyTorch sees no CUDA device (use DEVICE CPU or AUTO)\n"


def test_without_pytorch_the_command_says_how_to_install_it(fields, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    code, err = train(capsys, *fields[1], "-OUTPUT_NETWORK", tmp_path / "m")
    assert code == 2 and err == "maxitrain: maxitrain needs PyTorch: pip install 'maximask[train]'\n"


def test_default_train_file_is_what_dash_d_prints(capsys):
    assert main_train(["-d"]) == 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "config", "default.train")) as f:
        assert f.read() == capsys.readouterr().out


def test_a_terminal_gets_a_bar_with_the_loss_rate_and_eta(fields, tmp_path):
    from test_cli import on_terminal, screen_of

    args = [*fields[1], *TINY[:-2], "-STEPS", "4", "-OUTPUT_NETWORK", str(tmp_path / "m")]
    code, output = on_terminal(["maxitrain", *args], tmp_path, width=160)
    assert code == 0
    screen = [line for line in screen_of(output, width=160) if line]
    bars = [line for line in screen if line.startswith("training: ")]
    assert len(bars) == 1 and "100%|" in bars[0] and "4/4 [" in bars[0]
    assert "loss=" in bars[0] and "samples_s=" in bars[0]
    assert "<00:00" in bars[0]  # elapsed<remaining: the ETA
    assert not any(line.startswith("maxitrain: step ") for line in screen)  # the bar says it on a terminal
    assert screen[-1] == f"maxitrain: model directory {tmp_path / 'm'} written (4 steps, " + screen[-1].split(", ")[-1]
