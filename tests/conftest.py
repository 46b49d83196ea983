import os

import numpy as np
import pytest

# Processes the tests start (commands, Dask workers, killed runs) run from the repository
# root: they must import the installed package, which has the compiled kernels, not the
# source folder on the current directory.
os.environ["PYTHONSAFEPATH"] = "1"

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def load_fixture(name):
    """The arrays of tests/data/<name>.npz, as a dict."""
    with np.load(os.path.join(DATA, f"{name}.npz")) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def network_tiles():
    """Reference TensorFlow inputs/outputs on 400x400 tiles (tools/make_network_fixtures.py)."""
    return load_fixture("network_tiles")


@pytest.fixture(scope="session")
def e2e():
    """A field and the reference command's outputs on it (tools/make_e2e_fixture.py)."""
    return load_fixture("e2e_reference")


@pytest.fixture(scope="session")
def track_ref():
    """Two fields and the reference MaxiTrack scores (tools/make_track_fixture.py)."""
    return load_fixture("track_reference")


@pytest.fixture(scope="session")
def maximask_net():
    from maximask.engine import open_network

    return open_network("maximask", device="CPU")


@pytest.fixture(scope="session")
def maxitrack_net():
    from maximask.engine import open_network

    return open_network("maxitrack", device="CPU")


def write_clean_fields(folder, shape=(160, 160), fwhms=(3.0, 4.0, 5.0)):
    """Clean synthetic fields folder/clean<i>.fits, one per FWHM (px); their paths."""
    from astropy.io import fits

    from maximask.simulation.synthetic import clean_field

    paths = []
    for i, fwhm in enumerate(fwhms):
        paths.append(str(folder / f"clean{i}.fits"))
        fits.PrimaryHDU(clean_field(shape, seed=i, fwhm=fwhm)).writeto(paths[-1])
    return paths
