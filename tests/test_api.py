"""The Python API says what is wrong in its own terms, as the commands do in theirs."""
import numpy as np
import pytest
from astropy.io import fits

from maximask import Masker, Tracker
from maximask.errors import OutputExistsError
from maximask.simulation.synthetic import make_field


@pytest.fixture(scope="module")
def masker():
    return Masker(verbose_type="QUIET")


@pytest.mark.parametrize("api", ["mask", "track"])
@pytest.mark.parametrize("data, error, message", [
    (np.zeros((50, 60), np.float32), ValueError, "image: all pixels are zero: nothing to process"),
    (np.full((50, 60), np.nan), ValueError, "image: all pixels are NaN or infinite: nothing to process"),
    (np.ones((50, 60), np.complex64), TypeError, "image is complex (complex64): give the real pixel values"),
    ("night/x.fits", TypeError, "image must be a pixel array, not a path ('night/x.fits')"),
    (np.ones(10, np.float32), ValueError, "got shape (10,)"),
    (np.array([["a", "b"]]), TypeError, "image must hold numbers"),
])
def test_bad_arrays(masker, api, data, error, message):
    call = masker.run if api == "mask" else Tracker().score
    with pytest.raises(error) as info:
        call(data)
    assert message in str(info.value)


def test_existing_output_speaks_the_api(tmp_path):
    path = tmp_path / "x.fits"
    fits.PrimaryHDU(make_field((120, 130), seed=3)).writeto(path)
    (tmp_path / "x.mask.fits").write_bytes(b"keep")
    with pytest.raises(OutputExistsError) as info:
        Masker(verbose_type="QUIET").run_file(str(path))
    assert str(info.value) == (f"{tmp_path / 'x.mask.fits'}: output file already exists; pass "
                               "overwrite=True (OVERWRITE Y) to replace it")
    assert "-OVERWRITE" not in str(info.value) and (tmp_path / "x.mask.fits").read_bytes() == b"keep"
    out = Masker(verbose_type="QUIET", overwrite=True).run_file(str(path))
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (120, 130)
