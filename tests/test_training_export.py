"""Model directories written from PyTorch modules, run back in ONNX Runtime."""
import json
import os

import numpy as np
import onnx
import pytest
import torch

from maximask import __version__
from maximask.classes import TRAINING_PRIORS
from maximask.engine import MODELS_DIR, EngineError, Network, model_info, open_network
from maximask.errors import OutputError
from maximask._onnx_graphs import read_weights, weights_digest
from maximask.training import load_network, network_weights
from maximask.training.export import export_network
from maximask.training.priors import mean_posteriors

PARITY = 1e-5


def perturbed(name, seed=0, scale=0.02):
    """The packaged network with every parameter moved by a seeded relative perturbation."""
    module = load_network(name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1 + scale * torch.randn(p.shape, generator=generator))
    return module


def run(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def tuned_maximask(tmp_path_factory):
    module = perturbed("maximask")
    folder = tmp_path_factory.mktemp("export") / "tuned"
    info = export_network(module, folder, metadata={"base": "MaxiMask 1.4.1", "steps": 0})
    return module, folder, info


@pytest.mark.parametrize("graph", ["maximask.onnx", "maximask_cuda.onnx"])
@pytest.mark.parametrize("shape", [(2, 1, 64, 80), (1, 1, 45, 61)])
def test_exported_maximask_runs_as_the_module(tuned_maximask, graph, shape):
    module, folder, _ = tuned_maximask
    x = np.arcsinh(np.random.default_rng(5).normal(0, 5, shape)).astype(np.float32)
    ours = run(module, x)
    assert np.abs(ours - run(load_network("maximask"), x)).max() > 1e-3  # the weights did change
    onnx_out = Network(str(folder / graph), device="CPU")(x)
    assert np.abs(onnx_out - ours).max() <= PARITY


def test_exported_maximask_keeps_the_window_input(tuned_maximask):
    module, folder, _ = tuned_maximask
    x = np.arcsinh(np.random.default_rng(6).normal(0, 5, (1, 1, 96, 96))).astype(np.float32)
    part = Network(str(folder / "maximask.onnx"), device="CPU")(x, (10, 20, 50, 90))
    assert part.shape == (1, 14, 40, 70)
    assert np.abs(part - run(module, x)[:, :, 10:50, 20:90]).max() <= PARITY


def test_model_directory_contents(tuned_maximask):
    module, folder, info = tuned_maximask
    assert sorted(os.listdir(folder)) == ["LICENSE", "maximask.onnx", "maximask.weights", "maximask_cuda.onnx",
                                          "model.json"]
    with open(folder / "model.json") as f:
        assert json.load(f) == info
    assert info["network"] == "maximask" and info["software"] == f"maximask {__version__}"
    assert info["base"] == "MaxiMask 1.4.1" and info["steps"] == 0
    assert info["files"] == ["maximask.onnx", "maximask.weights", "maximask_cuda.onnx"]
    # the digest is of the weights, whichever holds them: module, exported graph
    assert info["weights_sha256"] == weights_digest(network_weights(module))
    assert info["weights_sha256"] == weights_digest(read_weights(str(folder / "maximask.onnx")))
    assert info["weights_sha256"] != weights_digest(read_weights(os.path.join(MODELS_DIR, "maximask.onnx")))
    doc = onnx.load(str(folder / "maximask.onnx"), load_external_data=False).doc_string
    assert "maximask.training.export" in doc and "Copyright 2018 Maxime Paillassa" in doc


def test_exported_weights_load_back_into_pytorch(tuned_maximask):
    module, folder, _ = tuned_maximask
    again = network_weights(load_network("maximask", str(folder / "maximask.onnx")))
    assert all(np.array_equal(again[k], v) for k, v in network_weights(module).items())


def test_exported_maxitrack_runs_as_the_module(network_tiles, tmp_path):
    module = perturbed("maxitrack", seed=1, scale=0.05)
    export_network(module, tmp_path / "track")
    assert sorted(os.listdir(tmp_path / "track")) == ["LICENSE", "maxitrack.onnx", "model.json"]
    x = np.arcsinh(network_tiles["inputs"][:2])[:, None].astype(np.float32)
    ours = run(module, x)
    assert np.abs(ours - run(load_network("maxitrack"), x)).max() > 1e-4
    assert np.abs(Network(str(tmp_path / "track" / "maxitrack.onnx"), device="CPU")(x) - ours).max() <= PARITY


@pytest.mark.parametrize("name", ["maximask", "maxitrack"])
def test_exporting_the_packaged_weights_rebuilds_the_packaged_graphs(name, tmp_path):
    """The exporter and tools/convert_models.py share one writer: same nodes, same weights."""
    export_network(load_network(name), tmp_path / "copy")
    files = ["maximask.onnx", "maximask_cuda.onnx"] if name == "maximask" else ["maxitrack.onnx"]
    for graph in files:
        ours = onnx.load(str(tmp_path / "copy" / graph), load_external_data=False).graph
        packaged = onnx.load(os.path.join(MODELS_DIR, graph), load_external_data=False).graph
        assert ours.node == packaged.node and ours.input == packaged.input and ours.output == packaged.output
        assert ours.initializer == packaged.initializer  # external-data offsets included
    if name == "maximask":
        with open(tmp_path / "copy" / "maximask.weights", "rb") as a, \
                open(os.path.join(MODELS_DIR, "maximask.weights"), "rb") as b:
            assert a.read() == b.read()


def test_exporting_the_packaged_weights_gives_the_packaged_outputs(network_tiles, maximask_net, tmp_path):
    export_network(load_network("maximask"), tmp_path / "copy")
    x = np.arcsinh(network_tiles["inputs"][:1, :160, :200])[:, None].astype(np.float32)
    assert np.array_equal(Network(str(tmp_path / "copy" / "maximask.onnx"), device="CPU")(x), maximask_net(x))


def test_an_existing_directory_is_never_replaced(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep").write_text("x")
    with pytest.raises(OutputError, match="model directory already exists"):
        export_network(load_network("maxitrack"), tmp_path / "model")
    assert os.listdir(tmp_path / "model") == ["keep"]
    with pytest.raises(OutputError, match="does not exist"):
        export_network(load_network("maxitrack"), tmp_path / "missing" / "model")
    with pytest.raises(TypeError, match="cannot export a Linear"):
        export_network(torch.nn.Linear(2, 2), tmp_path / "linear")
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no half-written folder left


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import maximask.training.export as export

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "_WRITERS", {k: (n, fail) for k, (n, _) in export._WRITERS.items()})
    with pytest.raises(OutputError, match="cannot write model directory: No space left on device"):
        export_network(load_network("maxitrack"), tmp_path / "model")
    assert os.listdir(tmp_path) == []


def test_the_engine_opens_a_model_directory(tuned_maximask):
    module, folder, info = tuned_maximask
    net = open_network("maximask", device="CPU", model_dir=str(folder))
    x = np.arcsinh(np.random.default_rng(7).normal(0, 5, (1, 1, 72, 64))).astype(np.float32)
    assert np.abs(net(x) - run(module, x)).max() <= PARITY
    model = model_info("maximask", str(folder))
    assert (model["label"], model["weights_sha256"]) == (str(folder), info["weights_sha256"])
    np.testing.assert_array_equal(model["training_priors"], TRAINING_PRIORS)  # none in model.json


@pytest.mark.parametrize("name", ["maximask", "maxitrack"])
def test_packaged_weights_digests_are_right(name):
    model = model_info(name)
    assert model["label"] == "MaxiMask 1.4.1"
    assert model["weights_sha256"] == weights_digest(read_weights(os.path.join(MODELS_DIR, f"{name}.onnx")))


def test_unusable_model_directories_are_refused_in_one_line(tuned_maximask, tmp_path):
    _, folder, _ = tuned_maximask
    cases = {}
    cases["missing"] = "missing: cannot read model.json (No such file or directory)"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.json").write_text("{network: maximask")
    cases["broken"] = "broken: model.json is not valid JSON"
    (tmp_path / "track").mkdir()
    (tmp_path / "track" / "model.json").write_text(json.dumps({"network": "maxitrack", "weights_sha256": "0"}))
    cases["track"] = "track: model.json describes network maxitrack, not maximask"
    (tmp_path / "nograph").mkdir()
    (tmp_path / "nograph" / "model.json").write_text((folder / "model.json").read_text())
    cases["nograph"] = "nograph: no maximask.onnx, so not a maximask model"
    for sub, message in cases.items():
        with pytest.raises(EngineError) as err:
            open_network("maximask", device="CPU", model_dir=str(tmp_path / sub))
        assert str(err.value).startswith("model directory ") and "\n" not in str(err.value)
        assert message in str(err.value), str(err.value)


def test_re_estimated_training_priors_travel_in_the_model_directory(network_tiles, maximask_net, maxitrack_net,
                                                                       tmp_path):
    """Eq. 27: the mean posterior over a validation set, exported, is what the engine reads."""
    x = np.arcsinh(network_tiles["inputs"][:, :200, :240])[:, None].astype(np.float32)
    batches = [torch.from_numpy(x[:2]), torch.from_numpy(x[2:])]
    priors = mean_posteriors(load_network("maximask"), batches)
    assert priors.shape == (14,)
    np.testing.assert_allclose(priors, maximask_net(x).astype(np.float64).mean(axis=(0, 2, 3)), rtol=0, atol=1e-6)
    export_network(load_network("maximask"), tmp_path / "mask", metadata={"training_priors": priors.tolist()})
    np.testing.assert_array_equal(model_info("maximask", str(tmp_path / "mask"))["training_priors"], priors)

    tiles = np.arcsinh(network_tiles["inputs"])[:, None].astype(np.float32)
    error = mean_posteriors(load_network("maxitrack"), [torch.from_numpy(tiles)])
    assert error == pytest.approx(maxitrack_net(tiles)[:, 1].astype(np.float64).mean(), abs=1e-6)
    export_network(load_network("maxitrack"), tmp_path / "track", metadata={"training_priors": error})
    assert model_info("maxitrack", str(tmp_path / "track"))["training_priors"] == error


def test_the_folder_a_killed_export_left_is_removed_by_the_next_export(tmp_path):
    import subprocess

    from maximask.outputs import PAYLOAD, TEMPORARY_MARK, temporary_output

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: the temporary folder below belongs to no live process
    with temporary_output(str(tmp_path / "other.model")) as payload:  # as an export makes it
        os.mkdir(payload)
        open(os.path.join(payload, "maximask.onnx"), "wb").write(b"half written")
        live = os.path.dirname(payload)
        stale = live.replace(f"-{os.getpid()}", f"-{dead.pid}")
        os.mkdir(stale)
        mark = open(os.path.join(live, TEMPORARY_MARK)).read()
        open(os.path.join(stale, TEMPORARY_MARK), "w").write(mark.replace(str(os.getpid()), str(dead.pid)))
        os.mkdir(os.path.join(stale, PAYLOAD))
        open(os.path.join(stale, PAYLOAD, "maximask.onnx"), "wb").write(b"half written")
        export_network(load_network("maxitrack"), tmp_path / "track.model")
        assert not os.path.exists(stale) and os.path.isdir(live)  # this process's: kept
        assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(live), "track.model"])
    assert sorted(os.listdir(tmp_path)) == ["track.model"]
