"""The PyTorch MaxiMask and MaxiTrack against ONNX Runtime running the packaged graphs."""
import numpy as np
import pytest
import torch

from maximask import architecture as arch
from maximask.engine import MODELS_DIR
from maximask.onnx_graphs import read_weights
from maximask.training import MaxiMask, MaxiTrack, load_network, network_weights

PARITY = 1e-5  # |p_torch - p_onnxruntime|, both float32
REFERENCE = 1e-4  # against the TensorFlow reference, as tests/test_models.py


def compressed(tiles):
    return np.arcsinh(tiles)[:, None].astype(np.float32)


def run(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def maximask_torch():
    return load_network("maximask")


def test_maximask_matches_onnxruntime_on_the_fixture_tiles(network_tiles, maximask_torch, maximask_net):
    x = compressed(network_tiles["inputs"])
    ours = run(maximask_torch, x)
    assert ours.shape == (3, 14, 400, 400) and ours.dtype == np.float32
    assert np.abs(ours - maximask_net(x)).max() <= PARITY
    stride = int(network_tiles["stride"])
    assert np.abs(ours[:, :, ::stride, ::stride] - network_tiles["maximask"]).max() <= REFERENCE


@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 1, 101, 66)])
def test_maximask_matches_onnxruntime_on_odd_sizes(maximask_torch, maximask_net, shape):
    # Odd sizes at several levels exercise the SAME_UPPER pooling and the odd unpooling.
    x = np.arcsinh(np.random.default_rng(1).normal(0, 5, shape)).astype(np.float32)
    ours = run(maximask_torch, x)
    assert ours.shape == (shape[0], 14) + shape[2:]
    assert np.abs(ours - maximask_net(x)).max() <= PARITY


def test_maxitrack_matches_onnxruntime_on_the_fixture_tiles(network_tiles, maxitrack_net):
    x = compressed(network_tiles["inputs"])
    ours = run(load_network("maxitrack"), x)
    assert ours.shape == (3, 2)
    assert np.abs(ours - maxitrack_net(x)).max() <= PARITY
    assert np.abs(ours - network_tiles["maxitrack"]).max() <= REFERENCE


def test_maximask_logits_give_the_probabilities_and_five_pre_predictions(maximask_torch):
    x = torch.from_numpy(np.arcsinh(np.random.default_rng(2).normal(0, 3, (1, 1, 48, 40))).astype(np.float32))
    with torch.no_grad():
        final, pre = maximask_torch.logits(x)
        probabilities = maximask_torch(x)
    assert sorted(pre) == sorted(arch.MAXIMASK_PREDICTION_LEVELS)
    assert all(p.shape == (1, 14, 48, 40) for p in pre.values())
    torch.testing.assert_close(torch.sigmoid(final), probabilities, rtol=0, atol=0)


@pytest.mark.parametrize("name, cls", [("maximask", MaxiMask), ("maxitrack", MaxiTrack)])
def test_parameters_are_the_onnx_initializers(name, cls):
    """Same names, shapes and values: the state dict is what the ONNX writer takes."""
    packaged = read_weights(f"{MODELS_DIR}/{name}.onnx")
    fresh = network_weights(cls())
    assert {k: v.shape for k, v in fresh.items()} == {k: v.shape for k, v in packaged.items()}
    loaded = network_weights(load_network(name))
    assert all(np.array_equal(loaded[k], packaged[k]) for k in packaged)
    if name == "maximask":  # as published
        assert sum(v.size for v in loaded.values()) == 5_727_944


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match="network maxinet unknown"):
        load_network("maxinet")
