"""The PyTorch MaxiMask and MaxiTrack against ONNX Runtime running the packaged graphs."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from maximask import _architecture as arch
from maximask.engine import MODELS_DIR
from maximask._onnx_graphs import read_weights
from maximask.simulation.synthetic import make_field
from maximask.training import MaxiMask, MaxiTrack, load_network, network_weights
from maximask.training import networks

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


def flat_tiles():
    """Compressed 256x256 tiles whose flat regions tie in the max-pools: two synthetic fields
    with saturated stars (plateaus at 60000 ADU), sky with a block of exact zeros, a
    saturated plateau and a constant block, and a tile of zeros. (4, 1, 256, 256) float32."""
    tiles = []
    for seed in (0, 1):  # one level and sigma for the tile keep its plateaus flat
        field = make_field((256, 256), seed=seed, saturated=2, ncosmics=3).astype(np.float64)
        level = np.median(field)
        tiles.append(np.arcsinh((field - level) / (1.4826 * np.median(np.abs(field - level)))))
    sky = np.random.default_rng(5).normal(0, 1, (256, 256))  # already in sigma units
    sky[60:190, 30:110] = 0.0
    sky[10:130, 150:250] = 900.0
    sky[200:, 130:] = 3.0
    tiles += [np.arcsinh(sky), np.zeros((256, 256))]
    return np.array(tiles, np.float32)[:, None]


def test_maximask_matches_onnxruntime_on_plateaus_and_zeros(maximask_torch, maximask_net):
    x = flat_tiles()
    assert all((t == t.max()).sum() > 100 for t in x[:3]) and not x[3].any()
    assert np.abs(run(maximask_torch, x) - maximask_net(x)).max() <= PARITY


def maxpool_session():
    """ONNX Runtime running one MaxPool as the MaxiMask graph has them, values and Indices."""
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2],
                            auto_pad="SAME_UPPER")
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 64, 51, 37), (1, 1, 1, 1), (3, 2, 1, 7)])
def test_pool_argmax_is_onnxruntimes_on_ties(shape):
    # Values from {0, 1, 2}: most windows tie, zeros (ReLU) included, odd sizes padded.
    x = np.random.default_rng(sum(shape)).integers(0, 3, shape).astype(np.float32)
    x[..., : shape[2] // 2, :] = 1.0  # and a plateau: every window of it ties four ways
    values, argmax = networks._pool(torch.from_numpy(x))
    onnx_values, onnx_argmax = maxpool_session().run(None, {"x": x})
    assert np.array_equal(values.numpy(), onnx_values)
    assert np.array_equal(argmax.numpy(), onnx_argmax % (shape[2] * shape[3]))  # ONNX: flat over N, C too


def test_pool_passes_the_gradient_to_the_argmax():
    x = torch.tensor([[[[1.0, 3.0, 2.0], [3.0, 0.0, 2.0], [5.0, 5.0, 5.0]]]], requires_grad=True)
    values, argmax = networks._pool(x)
    assert values.tolist() == [[[[3.0, 2.0], [5.0, 5.0]]]] and argmax.tolist() == [[[[1, 2], [6, 8]]]]
    values.sum().backward()
    assert x.grad.tolist() == [[[[0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]]]


@pytest.fixture(scope="module")
def maximask_with_argmax():
    """The packaged MaxiMask graph in ONNX Runtime, also returning its five MaxPool argmax
    (flat per plane): x (N, 1, H, W) -> (probabilities, [argmax of levels 0..4])."""
    model = onnx.load(os.path.join(MODELS_DIR, "maximask.onnx"))
    for level in range(5):
        model.graph.output.append(helper.make_tensor_value_info(f"pool{level}:1", TensorProto.INT64, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run_graph(x):
        probabilities, *argmax = session.run(None, {"input": x, "window": np.array([0, 0, *x.shape[2:]])})
        return probabilities, [a % (h * w) for a, (h, w) in zip(argmax, plane_shapes(x.shape[2:]))]

    return run_graph


def plane_shapes(shape):
    """(H, W) of the five pooled activations of MaxiMask on an (H, W) tile."""
    shapes = [tuple(shape)]
    for _ in range(4):
        shapes.append(tuple(-(-n // 2) for n in shapes[-1]))
    return shapes


@pytest.mark.parametrize("tiles", ["fixture", "flat"])
def test_maximask_with_the_graphs_argmax_matches_onnxruntime(tiles, network_tiles, maximask_torch,
                                                             maximask_with_argmax, monkeypatch):
    """The rest of the network is the same, and the argmax differs only at near-ties.

    Near-ties are windows whose two largest values differ by about the rounding of the
    convolutions, which differs between PyTorch's and ONNX Runtime's kernels (and with the
    CPU's instruction set): there the winner, and so the unpooled output, can differ. This
    holds on any CPU; the end-to-end tests above need no near-tie to flip on this one.
    """
    x = compressed(network_tiles["inputs"]) if tiles == "fixture" else flat_tiles()
    expected, graph_argmax = maximask_with_argmax(x)
    margins, own_pool = [], networks._pool

    def pool_at_the_graphs_argmax(v):
        own_values, own = own_pool(v)
        theirs = torch.from_numpy(graph_argmax[len(margins)])
        taken = v.flatten(2).gather(2, theirs.flatten(2)).view(theirs.shape)
        differ = own != theirs
        margins.append(((own_values - taken)[differ] / own_values[differ].abs().clamp(min=1)).numpy())
        return taken, theirs

    monkeypatch.setattr(networks, "_pool", pool_at_the_graphs_argmax)
    assert np.abs(run(maximask_torch, x) - expected).max() <= PARITY
    assert len(margins) == 5
    print("windows whose argmax differs, by level:", [len(m) for m in margins],
          "largest relative margin:", max((m.max() for m in margins if len(m)), default=0.0))
    assert all((m <= 1e-5).all() for m in margins)


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
