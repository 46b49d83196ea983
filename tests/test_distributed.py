"""Dask scale-out on a real LocalCluster of worker processes (maximask.distributed).

One cluster of 2 workers x 1 thread serves the module. Outputs of a cluster run are
compared byte for byte (data, and every header card but MM_DATE) with the in-process run.
"""
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import distributed  # in the test extra: these tests never skip
import numpy as np
import pytest
from astropy.io import fits

from maximask import errors, _workunits
from maximask.inputs import find_inputs
from maximask.cli import main_mask, main_track
from maximask.distributed import _run_unit, mask_files, process_files, task_resources
from maximask.masker import Masker


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _field(rng, h, w, trail_row=None):
    image = rng.normal(1000.0, 10.0, (h, w)).astype(np.float32)
    image[rng.integers(0, h, 6), rng.integers(0, w, 6)] += 4000.0  # hot pixels / cosmic rays
    if trail_row is not None:
        image[trail_row:trail_row + 2, 10:w - 10] += 300.0
    return image


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A single-HDU file, a MEF (empty primary, two images, a table, a blank image) and a cube."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(12)
    wcs = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": -5.0,
           "CRPIX1": 100.0, "CRPIX2": 80.0, "CDELT1": -7e-5, "CDELT2": 7e-5}
    fits.PrimaryHDU(_field(rng, 300, 420, 150), fits.Header(wcs)).writeto(folder / "single.fits")
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.ones(3))])
    fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(_field(rng, 256, 300, 40).astype(np.int32), name="CCD1"),
        table,
        fits.ImageHDU(_field(rng, 300, 256), name="CCD2"),
        fits.ImageHDU(np.zeros((64, 64), np.float32), name="BLANK"),
    ]).writeto(folder / "mef.fits")
    fits.PrimaryHDU(np.stack([_field(rng, 256, 256, 100 + 20 * k) for k in range(2)])).writeto(
        folder / "cube.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(_field(rng, 200, 300)),
                  fits.ImageHDU(_field(rng, 300, 200, 60))]).writeto(folder / "mef2.fits")
    names = ["single.fits", "mef.fits", "cube.fits"]
    return [str(folder / n) for n in names]


@pytest.fixture(scope="module")
def track_inputs(inputs):
    """Files maxitrack scores whole: a single HDU, a MEF of two images, a cube."""
    return [inputs[0], inputs[0].replace("single", "mef2"), inputs[2]]


def _checksums(paths):
    return {p: open(p, "rb").read() for p in paths}


def assert_same_fits(expected, got):
    """Same HDUs, same data bytes and dtypes, same header cards except the processing date."""
    with fits.open(expected) as a, fits.open(got) as b:
        assert len(a) == len(b)
        for ha, hb in zip(a, b):
            ca = [c for c in ha.header.cards if c.keyword != "MM_DATE"]
            cb = [c for c in hb.header.cards if c.keyword != "MM_DATE"]
            assert [c.image for c in ca] == [c.image for c in cb]
            if ha.data is None:
                assert hb.data is None
            else:
                assert ha.data.dtype == hb.data.dtype and ha.data.shape == hb.data.shape
                assert ha.data.tobytes() == hb.data.tobytes()


def _outputs(folder, inputs):
    return [os.path.join(folder, os.path.basename(p).replace(".fits", ".mask.fits")) for p in inputs]


@pytest.mark.parametrize("output_type", ["FLAGS", "MASKS", "PROBA", "WEIGHT"])
def test_cluster_outputs_are_the_in_process_outputs(client, inputs, tmp_path, capsys, output_type):
    before = _checksums(inputs)
    ref, dsk = tmp_path / "ref", tmp_path / "dsk"
    ref.mkdir()
    dsk.mkdir()
    common = ["-OUTPUT_TYPE", output_type, "-VERBOSE_TYPE", "QUIET", "-CLASSES", "CR,HP,TRL,SAT,BG"]
    assert main_mask(inputs + common + ["-OUTPUT_DIR", str(ref)]) == 0
    assert main_mask(inputs + common + ["-OUTPUT_DIR", str(dsk),
                                        "-CLUSTER", client.scheduler.address]) == 0
    assert capsys.readouterr().err == ""
    for expected, got in zip(_outputs(ref, inputs), _outputs(dsk, inputs)):
        assert_same_fits(expected, got)
    with fits.open(_outputs(dsk, inputs)[1]) as mef:  # empty primary, 2 images, the table's place, blank
        assert [h.name for h in mef] == ["PRIMARY", "CCD1", "", "CCD2", "BLANK"]
        assert mef[2].data is None and mef[2].header["MM_EMPTY"] == "BINTABLE"
        assert not mef["BLANK"].data.any()
    assert _checksums(inputs) == before


def test_a_log_gets_plain_lines_and_full_gives_the_scheduler_and_dashboard(client, inputs, tmp_path, capsys):
    assert main_mask(inputs[:2] + ["-OUTPUT_DIR", str(tmp_path), "-VERBOSE_TYPE", "FULL",
                                   "-CLUSTER", client.scheduler.address]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err  # stderr is not a terminal: no bar
    lines = err.splitlines()
    assert f"maximask: Dask scheduler {client.scheduler.address}, dashboard {client.dashboard_link}" in lines
    assert f"maximask: {inputs[1]}[2]: not masked (a table, not an image): an empty HDU keeps its place" in lines
    for unit in (f"{inputs[0]}[0]", f"{inputs[1]}[1]", f"{inputs[1]}[3]"):
        assert any(line.startswith(f"maximask: {unit}: ") and "Mpix/s, CPUExecutionProvider)" in line
                   for line in lines)
    assert f"maximask: {inputs[1]}[4]: all pixels are zero: its output HDU is left at 0" in lines
    for path in inputs[:2]:
        assert f"maximask: {path} -> {_outputs(tmp_path, [path])[0]}" in lines
    assert lines[-1].startswith("maximask: 2 files, 0.3 Mpix in ") and lines[-1].endswith(" on 2 Dask workers")


def _networks_kept():
    from maximask import distributed as on_worker

    return sorted((key[1], id(pipeline.network)) for key, pipeline in on_worker._PIPELINES.items())


def test_each_worker_opens_the_network_once_per_configuration(client, inputs, tmp_path):
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        done = dict(mask_files(client, inputs, output_dir=str(tmp_path / run), verbose_type="QUIET"))
        assert sorted(done.values()) == sorted(_outputs(tmp_path / run, inputs))
        kept = client.run(_networks_kept)
        if run == "first":
            first = kept
    assert kept == first  # the second run (other OUTPUT_DIR) used the same sessions
    assert all(1 <= len(networks) <= 2 for networks in kept.values())


def test_cluster_local_starts_its_own_workers(inputs, tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    assert main_mask(inputs[:1] + ["-OUTPUT_DIR", str(tmp_path / "ref"), "-VERBOSE_TYPE", "QUIET"]) == 0
    assert main_mask(inputs[:1] + ["-OUTPUT_DIR", str(tmp_path), "-VERBOSE_TYPE", "FULL",
                                   "-CLUSTER", "local", "-NWORKERS", "1", "-NTHREADS", "1"]) == 0
    assert_same_fits(_outputs(tmp_path / "ref", inputs[:1])[0], _outputs(tmp_path, inputs[:1])[0])
    assert capsys.readouterr().err.splitlines()[-1].endswith(" on 1 Dask worker")


def test_check_images_of_a_cluster_run_are_the_in_process_ones(client, inputs, tmp_path, capsys):
    ref, dsk = tmp_path / "ref", tmp_path / "dsk"
    ref.mkdir()
    dsk.mkdir()
    common = inputs[1:] + ["-VERBOSE_TYPE", "QUIET", "-CHECKIMAGE_TYPE", "CLEANED,BACKGROUND"]
    assert main_mask(common + ["-OUTPUT_DIR", str(ref)]) == 0
    assert main_mask(common + ["-OUTPUT_DIR", str(dsk), "-CLUSTER", client.scheduler.address]) == 0
    assert capsys.readouterr().err == ""
    names = sorted(os.listdir(ref))
    assert names == sorted(os.listdir(dsk)) and len(names) == 6  # mask, cleaned, back of 2 files
    for name in names:
        assert_same_fits(ref / name, dsk / name)
    for name in ("mef.mask.fits", "mef.cleaned.fits", "mef.back.fits"):  # the table's place kept
        with fits.open(dsk / name) as hdul:
            assert len(hdul) == 5 and hdul[2].data is None and hdul[2].header["MM_EMPTY"] == "BINTABLE"


def test_maxitrack_scores_are_the_in_process_scores(client, track_inputs, tmp_path, capsys):
    inputs = track_inputs
    ref, dsk = tmp_path / "ref.json", tmp_path / "dsk.json"
    common = ["-OUTPUT_TYPE", "JSON", "-VERBOSE_TYPE", "QUIET"]
    assert main_track(inputs + common + ["-OUTPUT_NAME", str(ref)]) == 0
    assert main_track(inputs + common + ["-OUTPUT_NAME", str(dsk), "-CLUSTER", client.scheduler.address]) == 0
    assert capsys.readouterr().err == ""
    expected, got = json.load(open(ref))["scores"], json.load(open(dsk))["scores"]
    assert [s["file"] for s in got] == inputs[:2] + [f"{inputs[2]}[0][{p}]" for p in (0, 1)]
    assert [len(s["hdus"]) for s in got] == [1, 2, 0, 0]
    assert got == expected  # exactly the same floats, in the input order


def test_bad_inputs_fail_alone(client, inputs, tmp_path, capsys):
    (tmp_path / "not.fits").write_text("not a FITS file")
    fits.PrimaryHDU(np.zeros((80, 90), np.float32)).writeto(tmp_path / "zeros.fits")
    (tmp_path / "here").mkdir()
    args = [inputs[0], str(tmp_path / "not.fits"), str(tmp_path / "missing.fits"),
            str(tmp_path / "zeros.fits"), inputs[2], "-VERBOSE_TYPE", "QUIET"]
    assert main_mask(args + ["-OUTPUT_DIR", str(tmp_path / "here")]) == 1
    in_process = capsys.readouterr().err.splitlines()
    assert main_mask(args + ["-OUTPUT_DIR", str(tmp_path), "-CLUSTER", client.scheduler.address]) == 1
    err = capsys.readouterr().err.splitlines()
    assert sorted(err) == sorted(in_process) == sorted([
        f"maximask: {tmp_path / 'not.fits'}: not a readable FITS file: no SIMPLE card found",
        f"maximask: {tmp_path / 'missing.fits'}: no such file or directory",
        f"maximask: {tmp_path / 'zeros.fits'}[0]: all pixels are zero: nothing to mask, no output written",
    ])
    assert sorted(os.listdir(tmp_path)) == ["cube.mask.fits", "here", "not.fits", "single.mask.fits",
                                            "zeros.fits"]


def test_a_task_that_cannot_read_its_input_reports_one_line(tmp_path):
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((90, 90), np.float32))]).writeto(tmp_path / "t.fits")
    masker = Masker(verbose_type="QUIET")
    plan = masker.plan_file(str(tmp_path / "t.fits"))
    with open(tmp_path / "t.fits", "r+b") as f:  # truncated after it was planned
        f.truncate(2880 * 3)
    failed = pickle.loads(pickle.dumps(_run_unit(Masker, masker.config, plan.units[0])))
    error = failed.error()
    with pytest.raises(errors.InputError) as in_process:
        masker.run_unit(plan.units[0])
    assert type(error) is errors.InputError and str(error) == str(in_process.value)
    assert str(error).startswith(f"{tmp_path / 't.fits'}: truncated or corrupt FITS file")


def test_a_worker_killed_mid_run_leaves_every_output_complete(client, inputs, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    names = []
    for k in range(6):
        names.append(str(tmp_path / f"copy{k}.fits"))
        with open(inputs[0], "rb") as src, open(names[-1], "wb") as dst:
            dst.write(src.read())
    main_mask([names[0], "-OUTPUT_DIR", str(ref), "-VERBOSE_TYPE", "QUIET"])
    pids = client.run(os.getpid)
    finished, killed = [], None
    for name, path in mask_files(client, names, verbose_type="QUIET"):
        finished.append((name, path))
        if killed is None:  # the other tasks are queued or running: kill a busy worker
            busy = [w for w, tasks in client.processing().items() if tasks] or list(pids)
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)
    assert sorted(finished) == sorted((n, n.replace(".fits", ".mask.fits")) for n in names)
    for _, path in finished:
        assert_same_fits(ref / "copy0.mask.fits", path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary left
    client.wait_for_workers(2, timeout=60)
    assert killed not in client.run(os.getpid).values()  # the nanny started a new process


def test_cuda_tasks_go_only_to_gpu_workers(client, inputs, tmp_path):
    assert task_resources(Masker(device="CUDA").config) == {"GPU": 1}
    assert task_resources(Masker(device="AUTO").config) is None
    gpu = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", client.scheduler.address,
                            "--nthreads", "1", "--resources", "GPU=1", "--name", "gpu-node",
                            "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.wait_for_workers(3, timeout=60)
        gpu_address = [a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "gpu-node"][0]
        masker = Masker(device="CPU", output_dir=str(tmp_path), verbose_type="QUIET")  # CPU stands in
        sources = find_inputs(inputs)
        units = sum(len(masker.plan_file(s).units) for s in sources)
        with distributed.get_task_stream(client) as stream:
            done = list(process_files(client, masker, sources, resources={"GPU": 1}))
        assert [type(out) for _, out in done] == [str] * 3
        ran = [t["worker"] for t in stream.data if t["key"].startswith("masker-")]
        assert len(ran) == units == 6
        assert set(ran) == {gpu_address}
    finally:
        gpu.terminate()
        gpu.wait(30)
    deadline = time.monotonic() + 30
    while len(client.scheduler_info()["workers"]) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_exit_2(inputs, tmp_path):
    address = f"tcp://127.0.0.1:{_closed_port()}"
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    for command in ("maximask", "maxitrack"):
        main = {"maximask": "main_mask", "maxitrack": "main_track"}[command]
        run = subprocess.run([sys.executable, "-c", f"import sys; from maximask.cli import {main}"
                              f" as m; sys.exit(m(sys.argv[1:]))", inputs[0], "-CLUSTER", address,
                              "-OUTPUT_DIR" if command == "maximask" else "-OUTPUT_NAME",
                              str(tmp_path if command == "maximask" else tmp_path / "scores")],
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 2, run.stderr
        lines = [s for s in run.stderr.splitlines() if not s.endswith("configuration from internal defaults")]
        assert len(lines) == 1 and lines[0].startswith(f"{command}: cannot reach the Dask scheduler at {address}: ")
    assert os.listdir(tmp_path) == []


def test_cluster_none_needs_no_dask_and_other_values_say_so(inputs, tmp_path):
    script = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"
              "from maximask.cli import main_mask\n"
              "rc = main_mask(sys.argv[1:])\n"
              "assert 'maximask.distributed' not in sys.modules or sys.argv[-1] != 'NONE'\n"
              "sys.exit(rc)\n")
    common = [inputs[0], "-OUTPUT_DIR", str(tmp_path), "-VERBOSE_TYPE", "QUIET", "-CLUSTER"]
    run = subprocess.run([sys.executable, "-c", script] + common + ["NONE"], capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")
    assert os.listdir(tmp_path) == ["single.mask.fits"]
    run = subprocess.run([sys.executable, "-c", script] + common + ["LOCAL"], capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (2, "maximask: CLUSTER LOCAL needs Dask: pip install 'maximask[dask]'\n")


@pytest.mark.parametrize("value", ["everywhere", "tcp://host", "host:port"])
def test_a_bad_cluster_value_is_a_configuration_error(value, capsys):
    assert main_mask(["x.fits", "-CLUSTER", value]) == 2
    assert capsys.readouterr().err == (f'maximask: CLUSTER: NONE, LOCAL or a scheduler address '
                                       f'such as tcp://host:8786 expected, got "{value}"\n')


def test_units_follow_hdus_and_cube_planes(inputs):
    plan = Masker().plan_file(inputs[1])
    assert [u.name for u in plan.units] == [f"{inputs[1]}[{k}]" for k in (1, 3, 4)]
    assert [u.shape for u in plan.units] == [(256, 300), (300, 256), (64, 64)]
    cube = Masker().plan_file(inputs[2]).units
    assert [(u.index, u.plane, u.name) for u in cube] == [(0, p, f"{inputs[2]}[0][{p}]") for p in (0, 1)]
    assert np.array_equal(_workunits.read_unit(cube[1]), fits.getdata(inputs[2])[1].astype(np.float32))
