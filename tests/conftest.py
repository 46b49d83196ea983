import os

import numpy as np
import pytest

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(scope="session")
def network_tiles():
    """Reference TensorFlow inputs/outputs on 400x400 tiles (tools/make_network_fixtures.py)."""
    with np.load(os.path.join(DATA, "network_tiles.npz")) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def maximask_net():
    from maximask.engine import open_network

    return open_network("maximask", device="CPU")


@pytest.fixture(scope="session")
def maxitrack_net():
    from maximask.engine import open_network

    return open_network("maxitrack", device="CPU")
