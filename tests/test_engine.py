"""Session creation: devices, threads, errors."""
import numpy as np
import pytest

from maximask import engine


def test_cpu_session_reports_its_provider(maximask_net):
    assert maximask_net.provider == "CPUExecutionProvider"
    assert maximask_net.device == "CPU"


def test_auto_resolves_to_an_available_device():
    assert engine.resolve_device("auto") in engine.available_devices()
    assert engine.resolve_device("cpu") == "CPU"


def test_unknown_device_is_refused():
    with pytest.raises(engine.EngineError, match="device TPU unknown"):
        engine.resolve_device("TPU")


def test_cuda_request_without_cuda_is_a_clear_error(monkeypatch):
    # The case is a machine whose onnxruntime offers no CUDA provider: made so on any machine.
    cpu_only = [p for p in engine.ort.get_available_providers() if p != "CUDAExecutionProvider"]
    monkeypatch.setattr(engine.ort, "get_available_providers", lambda: cpu_only)
    with pytest.raises(engine.EngineError, match="device CUDA unavailable"):
        engine.open_network("maxitrack", device="CUDA")


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(engine.EngineError, match="not found"):
        engine.Network(str(tmp_path / "nothing.onnx"), device="CPU")
    with pytest.raises(engine.EngineError, match="not found"):
        engine.model_path("no_such_model")


def test_thread_count_and_optimisation_level_do_not_change_results(maxitrack_net):
    x = np.arcsinh(np.random.default_rng(1).normal(0, 1, (2, 1, 400, 400))).astype(np.float32)
    one = engine.open_network("maxitrack", device="CPU", nthreads=1, optimization="basic")
    assert np.abs(one(x) - maxitrack_net(x)).max() < 1e-5


def test_bad_optimisation_level_is_refused():
    with pytest.raises(engine.EngineError, match="optimization"):
        engine.open_network("maxitrack", device="CPU", optimization="max")


def test_chunked_runs_give_the_same_output(network_tiles, maximask_net):
    x = np.arcsinh(network_tiles["inputs"])[:, None].astype(np.float32)
    chunked = engine.open_network("maximask", device="CPU", max_pixels=400 * 400)
    assert chunked.max_pixels == 160000
    assert np.abs(chunked(x) - maximask_net(x)).max() <= 1e-6


def test_io_binding_path_with_the_cpu_provider_standing_in_for_cuda(network_tiles, maximask_net):
    # The CUDA path feeds the session through an IO binding; the same code runs on the CPU.
    x = np.arcsinh(network_tiles["inputs"][:2])[:, None].astype(np.float32)
    bound = engine.open_network("maximask", device="CPU", io_binding=True, max_pixels=0)
    assert bound.io_binding and not maximask_net.io_binding
    assert np.abs(bound(x) - maximask_net(x)).max() <= 1e-6
    window = (100, 0, 300, 300)  # the window input is bound in host memory
    assert np.abs(bound(x, window) - maximask_net(x)[:, :, 100:300, :300]).max() <= 1e-6
    one_by_one = engine.open_network("maximask", device="CPU", max_pixels=400 * 400)
    assert np.abs(one_by_one(x, window) - bound(x, window)).max() <= 1e-6


def test_maxitrack_takes_no_window(network_tiles, maxitrack_net):
    x = np.arcsinh(network_tiles["inputs"][:1])[:, None].astype(np.float32)
    with pytest.raises(ValueError, match="takes no window"):
        maxitrack_net(x, (0, 0, 10, 10))


def test_workers_share_the_threads_and_the_pixels_in_flight():
    two = engine.open_network("maximask", device="CPU", nthreads=4, workers=2)
    assert two.workers == 2 and two.max_pixels == engine.CPU_MAX_PIXELS // 2
    assert two.session.get_session_options().intra_op_num_threads == 2
    auto = engine.open_network("maximask", device="CPU", nthreads=1, workers=0)
    assert auto.workers == 1 and auto.max_pixels == engine.CPU_MAX_PIXELS
