"""The overlapped pipeline (maximask._host_pipeline) against the sequential loop (Masker.depth 0).

Byte-identical outputs for every output type, multi-HDU files, cubes and images smaller
than a tile; bounded pixels in flight; a failure in a later HDU or batch gives one error
and no partial file, and the files around it are still masked.
"""
import os
import threading

import numpy as np
import pytest
from astropy.io import fits

from maximask import errors, kernels
from maximask import _host_pipeline as pipeline
from maximask.cli import main_mask
from maximask.engine import EngineError
from maximask.masker import Masker

SMALL_TILES = dict(tile_size=128, tile_margin=32, batch_size=3, verbose_type="QUIET", overwrite=True)


class Probe:
    """A network stand-in whose probabilities are a fixed function of each tile's pixels
    (so that every class is flagged somewhere); raises `fail` on call number `fail_at`."""

    provider = "probe"

    def __init__(self, workers=1, fail_at=None, fail=None):
        self.workers, self.fail_at, self.fail = workers, fail_at, fail
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, tiles, window):
        with self.lock:
            self.calls += 1
            if self.calls == self.fail_at:
                raise self.fail
        y0, x0, y1, x1 = window
        t = tiles[:, :, y0:y1, x0:x1]
        k = np.arange(14, dtype=np.float32).reshape(1, 14, 1, 1)
        return (0.5 + 0.5 * np.sin(t * (1 + k) + k)).astype(np.float32)


class ProbeMasker(Masker):
    probe = None

    @property
    def network(self):
        return self.probe


def probe_masker(depth, probe=None, **keywords):
    masker = ProbeMasker(**{**SMALL_TILES, **keywords})
    masker.probe = probe or Probe()
    masker.depth = depth
    return masker


def field(e2e, rows, cols, flip=False):
    image = e2e["field"][rows, cols].astype(np.float32)
    return np.ascontiguousarray(image[::-1] if flip else image)


def write_mef(path, e2e, nan=True):
    """Empty primary; a 2-D HDU with NaNs; a table; a 2-plane cube; an image smaller than a tile."""
    image = field(e2e, slice(0, 230), slice(0, 310))
    if nan:
        image[50:60, 70:75] = np.nan
    cube = np.stack([field(e2e, slice(100, 260), slice(50, 250)), field(e2e, slice(0, 160), slice(0, 200), True)])
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="IMG"), table, fits.ImageHDU(cube, name="CUBE"),
                  fits.ImageHDU(field(e2e, slice(10, 70), slice(20, 110)), name="TINY")]).writeto(path)
    return str(path)


def contents(path):
    """Every HDU's data bytes and header cards but MM_DATE."""
    with fits.open(path) as hdul:
        return [("".join(c.image for c in h.header.cards if c.keyword != "MM_DATE"),
                 None if h.data is None else (str(h.data.dtype), h.data.tobytes())) for h in hdul]


def leftovers(folder):
    return [f for f in os.listdir(folder) if "maximask-tmp" in f]


@pytest.mark.parametrize("output_type", ["FLAGS", "PROBA", "MASKS", "WEIGHT"])
@pytest.mark.parametrize("workers", [1, 3])
def test_pipelined_files_are_the_sequential_loops_byte_for_byte(e2e, tmp_path, output_type, workers):
    path = write_mef(tmp_path / "m.fits", e2e)
    outputs = []
    for depth in (0, 1, pipeline.DEPTH):
        folder = tmp_path / f"d{depth}"
        folder.mkdir()
        masker = probe_masker(depth, Probe(workers), output_type=output_type, output_dir=str(folder),
                              classes="CR,HCL,SAT,BBG,BG")
        outputs.append(contents(masker.run_file(path)))
    assert outputs[0] == outputs[1] == outputs[2]
    data = [d for _, d in outputs[0] if d is not None]
    assert len(data) == 3 and all(np.frombuffer(b, np.dtype(t)).any() for t, b in data), "something flagged"


def test_arrays_and_cubes_through_the_pipeline(e2e):
    image = field(e2e, slice(0, 300), slice(0, 420))
    cube = np.stack([image[:90, :130], image[90:180, 130:260]])  # planes smaller than a tile
    for output_type in ("FLAGS", "PROBA", "WEIGHT"):
        got = [probe_masker(depth, output_type=output_type) for depth in (0, 2)]
        np.testing.assert_array_equal(got[0].run(image), got[1].run(image))
        np.testing.assert_array_equal(got[0].run(cube), got[1].run(cube))


def test_the_real_network_gives_the_sequential_output(e2e, tmp_path):
    path = write_mef(tmp_path / "m.fits", e2e)
    outputs = []
    for depth in (0, pipeline.DEPTH):
        folder = tmp_path / f"d{depth}"
        folder.mkdir()
        masker = Masker(**SMALL_TILES, output_type="PROBA", classes="CR,HP,SAT,BG", output_dir=str(folder))
        masker.depth = depth
        outputs.append(contents(masker.run_file(path)))
    assert outputs[0] == outputs[1]


def test_pixels_in_flight_stay_bounded(e2e, tmp_path, monkeypatch):
    """Tiles cut and not yet stitched: at most depth batches; pixels of the units read and
    not yet masked: PREFETCH_PIXELS, or one unit when that is less."""
    paths = []
    for k in range(3):
        paths.append(write_mef(tmp_path / f"m{k}.fits", e2e))
    cut, stitched, held, peak = [0], [0], [0], {"tiles": 0, "units": 0}
    extract, stitch = kernels.extract_tiles, kernels.stitch

    def counting_extract(image, origins, tile_size=400, **kw):
        cut[0] += len(origins)
        peak["tiles"] = max(peak["tiles"], cut[0] - stitched[0])
        return extract(image, origins, tile_size, **kw)

    def counting_stitch(batch, origins, out, *args, **kw):
        if out.ndim == 2 or out.dtype != np.int16:  # the output's stitch, not the check-images'
            stitched[0] += len(batch)
        return stitch(batch, origins, out, *args, **kw)

    monkeypatch.setattr(kernels, "extract_tiles", counting_extract)
    monkeypatch.setattr(kernels, "stitch", counting_stitch)
    # without the trail stage's every-class flags, whose stitches this test would count too
    masker = probe_masker(2, output_type="FLAGS", output_dir=str(tmp_path), trail_search=False)
    prepare, result = masker.prepare_unit, masker.unit_result

    def counting_prepare(unit, data, started):
        held[0] += unit.pixels
        peak["units"] = max(peak["units"], held[0])
        return prepare(unit, data, started)

    def counting_result(prepared, *args, **kw):
        held[0] -= prepared.unit.pixels
        return result(prepared, *args, **kw)

    monkeypatch.setattr(masker, "prepare_unit", counting_prepare)
    monkeypatch.setattr(masker, "unit_result", counting_result)
    monkeypatch.setattr(pipeline, "PREFETCH_PIXELS", 1)  # one unit at a time
    outcomes = list(masker.run_files(paths))
    assert [o for _, o in outcomes] == [str(tmp_path / f"m{k}.mask.fits") for k in range(3)]
    largest = 230 * 310
    assert peak["tiles"] <= 2 * 3 and peak["units"] == largest and cut[0] == stitched[0] > 3 * 10
    held[0] = peak["units"] = 0
    monkeypatch.setattr(pipeline, "PREFETCH_PIXELS", 2 * largest)
    list(masker.run_files(paths))
    assert largest < peak["units"] <= 2 * largest


def test_a_corrupt_later_hdu_fails_its_file_alone(e2e, tmp_path, capsys):
    good = [write_mef(tmp_path / f"g{k}.fits", e2e) for k in range(2)]
    with fits.open(good[0]) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[4] = fits.ImageHDU((hdus[4].data * 10).astype(np.int16), header=hdus[4].header)
    hdus[4].header["BSCALE"] = "oops"  # read only when the pixels are: after HDUs 1 and 3 went to the network
    bad = str(tmp_path / "bad.fits")
    fits.HDUList(hdus).writeto(bad, output_verify="ignore")
    out = tmp_path / "out"
    out.mkdir()
    masker = probe_masker(pipeline.DEPTH, output_dir=str(out))
    outcomes = list(masker.run_files([good[0], bad, good[1]]))
    assert [s.path for s, _ in outcomes] == [good[0], bad, good[1]]
    error = outcomes[1][1]
    assert isinstance(error, errors.InputError) and str(error).startswith(f"{bad}[4]: cannot read data")
    assert sorted(os.listdir(out)) == ["g0.mask.fits", "g1.mask.fits"]
    sequential = probe_masker(0, output_dir=str(tmp_path))
    assert contents(out / "g1.mask.fits") == contents(sequential.run_file(good[1]))
    # the command: one line, exit 1, the others written
    (tmp_path / "cli").mkdir()
    code = main_mask([good[0], bad, good[1], "-OUTPUT_DIR", str(tmp_path / "cli"), "-VERBOSE_TYPE", "QUIET"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and f"{bad}[4]: cannot read data" in err
    assert sorted(os.listdir(tmp_path / "cli")) == ["g0.mask.fits", "g1.mask.fits"]


@pytest.mark.parametrize("fail_at", [1, 4, 9])
def test_a_network_failure_at_batch_k_writes_nothing_of_that_file(e2e, tmp_path, fail_at):
    paths = [write_mef(tmp_path / f"m{k}.fits", e2e) for k in range(2)]
    out = tmp_path / "out"
    out.mkdir()
    per_file = probe_masker(0).probe
    probe_masker(0, per_file, output_dir=str(tmp_path / "out")).run_file(paths[0])
    assert per_file.calls > 9  # batch 9 is still in the first file
    os.remove(out / "m0.mask.fits")
    masker = probe_masker(pipeline.DEPTH, Probe(fail_at=fail_at, fail=EngineError("device lost")),
                          output_dir=str(out))
    outcomes = list(masker.run_files(paths))
    assert isinstance(outcomes[0][1], EngineError) and outcomes[1][1] == str(out / "m1.mask.fits")
    assert os.listdir(out) == ["m1.mask.fits"]
    # anything else than an EngineError stops the run: nothing partial, no thread left
    threads = threading.active_count()
    masker = probe_masker(pipeline.DEPTH, Probe(fail_at=fail_at, fail=RuntimeError("bug")), output_dir=str(out))
    with pytest.raises(RuntimeError, match="bug"):
        masker.run_file(paths[0])
    with pytest.raises(RuntimeError, match="bug"):
        probe_masker(pipeline.DEPTH, Probe(fail_at=fail_at, fail=RuntimeError("bug"))).run(
            field(e2e, slice(0, 300), slice(0, 420)))
    assert os.listdir(out) == ["m1.mask.fits"] and not leftovers(out)
    assert threading.active_count() == threads
