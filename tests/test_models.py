"""The ONNX networks against the reference TensorFlow MaxiMask 1.4.1 on fixture tiles."""
import numpy as np
import onnx
import pytest

from maximask.classes import ABBREVIATIONS
from maximask.engine import Network, model_path

TOLERANCE = 1e-4

# Operators of our graphs that ONNX Runtime's CUDA provider implements (its
# docs/OperatorKernels.md). MaxUnpool is not among them: a node without a CUDA kernel runs
# on the CPU, with its activations copied off and back onto the GPU at every call.
CUDA_OPERATORS = {"Add", "Concat", "ConstantOfShape", "Conv", "Div", "Flatten", "Gemm", "Max", "MaxPool",
                  "PRelu", "Relu", "Reshape", "ScatterElements", "Shape", "Sigmoid", "Slice", "Softmax",
                  "Split", "Sub"}


def compressed(tiles):
    """(N, 400, 400) normalised pixels -> (N, 1, 400, 400) network input."""
    return np.arcsinh(tiles)[:, None].astype(np.float32)


def test_maximask_matches_reference_on_every_class(network_tiles, maximask_net):
    stride = int(network_tiles["stride"])
    out = maximask_net(compressed(network_tiles["inputs"]))
    assert out.shape == (3, 14, 400, 400) and out.dtype == np.float32
    diff = np.abs(out[:, :, ::stride, ::stride] - network_tiles["maximask"])
    worst = diff.max(axis=(0, 2, 3))
    for abbr, d in zip(ABBREVIATIONS, worst):
        assert d <= TOLERANCE, f"class {abbr}: max |dp| = {d:.2e}"


def test_maximask_fixture_is_not_trivial(network_tiles):
    # The parity test means something only if the reference flags contaminants in the tiles.
    ref = network_tiles["maximask"]
    names = list(network_tiles["names"])
    busy = ref[names.index("contaminants")]
    for abbr in ("CR", "SAT", "BBG", "BG"):
        assert busy[ABBREVIATIONS.index(abbr)].max() > 0.9, abbr


def test_maxitrack_matches_reference(network_tiles, maxitrack_net):
    out = maxitrack_net(compressed(network_tiles["inputs"]))
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(out - network_tiles["maxitrack"]).max() <= TOLERANCE
    # the tracking-error tile scores higher than the well-guided ones
    names = list(network_tiles["names"])
    assert out[names.index("tracking"), 1] > out[names.index("contaminants"), 1]


def test_batch_members_are_independent(network_tiles, maximask_net):
    x = compressed(network_tiles["inputs"])
    together = maximask_net(x)
    alone = maximask_net(x[1:2])
    assert np.abs(together[1:2] - alone).max() <= 1e-5


@pytest.mark.parametrize("shape", [(2, 1, 512, 640), (1, 1, 64, 64), (1, 1, 401, 257)])
def test_maximask_dynamic_shapes(maximask_net, shape):
    rng = np.random.default_rng(0)
    out = maximask_net(np.arcsinh(rng.normal(0, 1, shape)).astype(np.float32))
    assert out.shape == (shape[0], 14, shape[2], shape[3])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("window", [(100, 100, 300, 300), (0, 100, 300, 300), (100, 0, 300, 400),
                                    (0, 0, 300, 148), (100, 100, 400, 400), (37, 201, 38, 399), (0, 0, 400, 400)])
def test_maximask_window_equals_the_same_part_of_the_whole_tile(network_tiles, maximask_net, window):
    """The decoder computes only what the window depends on: same numbers, less work."""
    x = compressed(network_tiles["inputs"])
    whole = maximask_net(x)
    y0, x0, y1, x1 = window
    part = maximask_net(x, window)
    assert part.shape == (3, 14, y1 - y0, x1 - x0)
    assert np.abs(part - whole[:, :, y0:y1, x0:x1]).max() <= 1e-6


def test_maximask_window_on_odd_tiles(maximask_net):
    x = np.arcsinh(np.random.default_rng(3).normal(0, 2, (1, 1, 333, 257))).astype(np.float32)
    whole = maximask_net(x)
    part = maximask_net(x, (50, 61, 251, 200))
    assert np.abs(part - whole[:, :, 50:251, 61:200]).max() <= 1e-6


@pytest.mark.parametrize("window", [(0, 0, 401, 400), (-1, 0, 300, 300), (200, 0, 200, 400)])
def test_maximask_rejects_windows_outside_the_tile(maximask_net, window):
    with pytest.raises(ValueError, match="not inside a 400x400 tile"):
        maximask_net(np.zeros((1, 1, 400, 400), np.float32), window)


def test_larger_input_agrees_with_tile_in_its_centre(network_tiles, maximask_net):
    # Fully convolutional: embedding a tile in a larger frame changes only the borders'
    # context, so deep inside, the probabilities barely move.
    tile = compressed(network_tiles["inputs"][:1])
    big = np.pad(tile, ((0, 0), (0, 0), (64, 64), (32, 96)), mode="reflect")
    small_out = maximask_net(tile)[0, :, 150:250, 150:250]
    big_out = maximask_net(big)[0, :, 214:314, 182:282]
    assert np.abs(small_out - big_out).max() < 0.05


def test_model_graph_interfaces():
    mm = onnx.load(model_path("maximask"), load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in mm.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, "H", "W"]
    assert {n.op_type for n in mm.graph.node} >= {"MaxPool", "MaxUnpool", "Sigmoid"}
    assert "Asinh" not in {n.op_type for n in mm.graph.node}
    assert [i.name for i in mm.graph.input] == ["input", "window"]
    n_params = sum(int(np.prod(t.dims)) for t in mm.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    assert n_params == 5_727_944  # the published network's parameter count
    mt = onnx.load(model_path("maxitrack"), load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in mt.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 400, 400]


@pytest.mark.parametrize("name", ["maximask", "maxitrack"])
def test_every_node_of_the_cuda_graphs_has_a_cuda_kernel(name):
    graph = onnx.load(model_path(name, "CUDA"), load_external_data=False).graph
    missing = {n.op_type for n in graph.node} - CUDA_OPERATORS
    assert not missing, f"{name}: no CUDA kernel for {sorted(missing)}"


def test_cuda_graph_gives_the_cpu_graph_numbers(network_tiles, maximask_net):
    """The CUDA graph (ScatterElements unpooling), run here by the CPU provider."""
    assert model_path("maximask", "CUDA").endswith("maximask_cuda.onnx")
    cuda_graph = Network(model_path("maximask", "CUDA"), device="CPU")
    x = compressed(network_tiles["inputs"])
    for window in (None, (100, 0, 300, 300)):
        assert np.abs(cuda_graph(x, window) - maximask_net(x, window)).max() <= 1e-6
