"""FITS I/O: input discovery, HDU reading, output naming, headers and atomic writing."""
import gzip
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from maximask import fitsio
from maximask.errors import InputError, OutputError, OutputExistsError
from maximask.fitsio import check_data, open_image, output_header, output_path, read_image_hdus, write_hdus
from maximask.inputs import ImageSource, find_inputs


def _image(shape=(40, 50), seed=0):
    return np.random.default_rng(seed).normal(1000, 10, shape).astype(np.float32)


def _wcs_header():
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = 25.5, 20.5
    h["CRVAL1"], h["CRVAL2"] = 150.1234567, 2.2345678
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -7.3e-5, 1e-7, 2e-7, 7.3e-5
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    return h


def _mef(path, n=2, table=False, primary_data=None):
    hdus = [fits.PrimaryHDU(primary_data)]
    for i in range(n):
        hdr = _wcs_header()
        hdr["EXTNAME"] = f"CCD{i + 1}"
        hdus.append(fits.ImageHDU(_image(seed=i), header=hdr))
    if table:
        hdus.append(fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1., 2.])]))
    fits.HDUList(hdus).writeto(path)
    return str(path)


# ------------------------------------------------------------------------ discovery

def test_find_plain_file_and_hdu_index(tmp_path):
    f = tmp_path / "a.fits"
    fits.PrimaryHDU(_image()).writeto(f)
    srcs = find_inputs([str(f), f"{f}[1]"])
    assert srcs == [ImageSource(str(f)), ImageSource(str(f), 1)]
    assert srcs[1].name == f"{f}[1]"
    assert srcs[0].hdu is None and srcs[0].name == str(f)


def test_find_directory_sorted_skips_outputs_and_non_fits(tmp_path):
    for name in ["b.fits", "a.fits.fz", "c.fit", "d.fts.gz", "e.fz", "notes.txt",
                 "a.mask.fits", "b.mask3.fits", ".b.mask.fits.tmp-12", "x.masked.fits"]:
        (tmp_path / name).write_bytes(b"")
    names = [os.path.basename(s.path) for s in find_inputs([str(tmp_path)])]
    assert names == ["a.fits.fz", "b.fits", "c.fit", "d.fts.gz", "e.fz", "x.masked.fits"]


def test_find_directory_other_suffix(tmp_path):
    for name in ["a.fits", "a.flags.fits", "a.mask.fits"]:
        (tmp_path / name).write_bytes(b"")
    names = [os.path.basename(s.path) for s in find_inputs([str(tmp_path)], suffix=".flags.fits")]
    assert names == ["a.fits", "a.mask.fits"]


def test_find_lists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for name in ["x.fits", "y.fits", "sub/z.fits"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "imgs.list").write_text("# images\n\nx.fits\n  y.fits[2]  \nsub\n")
    (tmp_path / "other.txt").write_text("y.fits\n")
    got = find_inputs(["imgs.list", "@other.txt", "x.fits"])   # duplicates kept once
    assert [(s.path, s.hdu) for s in got] == [
        ("x.fits", None), ("y.fits", 2), (os.path.join("sub", "z.fits"), None),
        ("y.fits", None)]


def test_list_paths_are_relative_to_cwd(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.fits").write_bytes(b"")
    (tmp_path / "d" / "l.list").write_text("x.fits\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"x\.fits.*listed in d/l\.list line 1"):
        find_inputs(["d/l.list"])


@pytest.mark.parametrize("make,arg,needle", [
    (None, "missing.fits", "missing.fits"),
    (None, "missing.fits[1]", "missing.fits"),
    (None, "@nolist.txt", "nolist.txt"),
    ("dir", "emptydir", "no FITS files"),
    ("empty_list", "e.list", "names no image"),
    ("file", "a.fits[x]", "a.fits[x]"),
    ("binary_list", "@bin.lst", "bin.lst"),
])
def test_find_errors(tmp_path, monkeypatch, make, arg, needle):
    monkeypatch.chdir(tmp_path)
    if make == "dir":
        os.mkdir("emptydir")
        (tmp_path / "emptydir" / "readme.txt").write_text("")
    elif make == "empty_list":
        (tmp_path / "e.list").write_text("# nothing\n\n")
    elif make == "file":
        (tmp_path / "a.fits").write_bytes(b"")
    elif make == "binary_list":
        (tmp_path / "bin.lst").write_bytes(b"\xff\xfe\x00garbage\xff")
    with pytest.raises(InputError) as exc:
        find_inputs([arg])
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


# ------------------------------------------------------------------------ reading

@pytest.mark.parametrize("bitpix,dtype", [(8, np.uint8), (16, np.int16), (32, np.int32),
                                          (64, np.int64), (-32, np.float32),
                                          (-64, np.float64)])
def test_read_bitpix_with_scaling(tmp_path, bitpix, dtype):
    raw = (np.arange(30 * 20).reshape(30, 20) % 200).astype(dtype)
    hdu = fits.PrimaryHDU(raw)
    assert hdu.header["BITPIX"] == bitpix
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 100.0
    path = tmp_path / f"b{bitpix}.fits"
    # write the raw values with the scaling cards: the physical value is 0.5*raw + 100
    fits.HDUList([hdu]).writeto(path)
    with fits.open(path, do_not_scale_image_data=True) as f:       # check the file as built
        assert f[0].header["BITPIX"] == bitpix and f[0].header["BZERO"] == 100.0
    (h,) = list(read_image_hdus(str(path)))
    assert h.maskable and h.kind == "primary" and h.bitpix == bitpix
    assert h.data.dtype == np.float32 and h.data.flags.c_contiguous
    assert h.data.dtype.byteorder in "=|"
    np.testing.assert_allclose(h.data, raw.astype(np.float64) * 0.5 + 100.0, rtol=1e-6)


def test_read_unsigned_16_and_blank(tmp_path):
    raw = np.array([[0, 1, 65535], [40000, 2, 3]], dtype=np.uint16)
    fits.PrimaryHDU(np.tile(raw, (5, 5))).writeto(tmp_path / "u.fits")
    (h,) = list(read_image_hdus(str(tmp_path / "u.fits")))
    np.testing.assert_array_equal(h.data, np.tile(raw, (5, 5)).astype(np.float32))
    b = fits.PrimaryHDU(np.full((4, 4), 7, np.int16))
    b.data[1, 2] = -999
    b.header["BLANK"] = -999
    b.writeto(tmp_path / "blank.fits")
    (h,) = list(read_image_hdus(str(tmp_path / "blank.fits")))
    assert np.isnan(h.data[1, 2]) and np.count_nonzero(np.isnan(h.data)) == 1
    assert h.data[0, 0] == 7


def test_read_mef_structure_tables_and_cube(tmp_path):
    path = _mef(tmp_path / "m.fits", n=2, table=True)
    hdus = list(read_image_hdus(path))
    assert [(h.index, h.kind, h.maskable) for h in hdus] == [
        (0, "primary", False), (1, "image", True), (2, "image", True), (3, "table", False)]
    assert hdus[0].data is None and hdus[3].data is None and "table" in hdus[3].reason
    np.testing.assert_array_equal(hdus[2].data, _image(seed=1))
    assert hdus[1].extname == "CCD1" and hdus[2].shape == (40, 50)

    cube = (np.arange(3 * 10 * 12).reshape(3, 10, 12)).astype(np.int16)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    with open_image(str(tmp_path / "cube.fits")) as im:
        assert im.hdus[0].shape == (3, 10, 12) and im.hdus[0].data is None   # lazy
        np.testing.assert_array_equal(im.read(0).data, cube)

    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(10, np.float32)),
                  fits.ImageHDU(_image())]).writeto(tmp_path / "one_d.fits")
    with open_image(str(tmp_path / "one_d.fits")) as im:
        assert [h.maskable for h in im.hdus] == [False, False, True]
        assert "1-D" in im.skipped[1].reason


def test_read_selected_hdu(tmp_path):
    path = _mef(tmp_path / "m.fits", n=3)
    hdus = list(read_image_hdus(ImageSource(path, 2)))
    assert len(hdus) == 1 and hdus[0].index == 2
    np.testing.assert_array_equal(hdus[0].data, _image(seed=1))


def test_fz_and_gz_round_trip(tmp_path):
    img = _image((60, 70), seed=3)
    ints = (img * 10).astype(np.int32)
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(ints, compression_type="RICE_1"),
                  fits.CompImageHDU(img, compression_type="GZIP_2", quantize_level=0.0)]).writeto(
        tmp_path / "c.fits.fz")
    hdus = list(read_image_hdus(str(tmp_path / "c.fits.fz")))
    assert [h.kind for h in hdus] == ["primary", "compressed", "compressed"]
    np.testing.assert_array_equal(hdus[1].data, ints.astype(np.float32))
    np.testing.assert_array_equal(hdus[2].data, img)          # GZIP_2 is lossless

    out = tmp_path / "c.mask.fits"
    write_hdus(str(out), [(h.kind, h.data, h.header) for h in hdus])
    with fits.open(out) as f:
        assert [type(x).__name__ for x in f] == ["PrimaryHDU", "ImageHDU", "ImageHDU"]
        np.testing.assert_array_equal(f[2].data, img)
        assert "ZCMPTYPE" not in f[2].header and "ZIMAGE" not in f[2].header

    fits.PrimaryHDU(img).writeto(tmp_path / "p.fits")
    with open(tmp_path / "p.fits", "rb") as src, gzip.open(tmp_path / "g.fits.gz", "wb") as dst:
        dst.write(src.read())
    (h,) = list(read_image_hdus(str(tmp_path / "g.fits.gz")))
    np.testing.assert_array_equal(h.data, img)


def test_input_file_untouched(tmp_path):
    path = _mef(tmp_path / "m.fits")
    before = (tmp_path / "m.fits").read_bytes()
    hdus = list(read_image_hdus(path))
    hdus[1].data[:] = 0                       # data handed out are ours to modify
    assert (tmp_path / "m.fits").read_bytes() == before
    np.testing.assert_array_equal(list(read_image_hdus(path))[1].data, _image(seed=0))


def _bad(tmp_path, what):
    p = tmp_path / f"{what}.fits"
    if what == "garbage":
        p.write_bytes(b"this is not a FITS file at all\n" * 200)
    elif what == "empty":
        p.write_bytes(b"")
    elif what in ("truncated_data", "truncated_header", "truncated_fz", "short_tail"):
        src = tmp_path / "src.fits"
        if what == "truncated_fz":
            fits.HDUList([fits.PrimaryHDU(),
                          fits.CompImageHDU(_image((200, 200)))]).writeto(src)
        else:
            _mef(src, n=2)
        raw = src.read_bytes()
        cut = {"truncated_data": len(raw) - 2880, "truncated_header": 2880 * 5 + 1000,
               "truncated_fz": len(raw) // 2, "short_tail": len(raw) - 5}[what]
        p.write_bytes(raw[:cut])
    elif what == "no_image":
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column("a", "E", array=[1.0])])]).writeto(p)
    elif what == "bad_gzip":
        p = tmp_path / "bad.fits.gz"
        p.write_bytes(gzip.compress(b"SIMPLE  =                    T" + b" " * 50)[:30])
    return str(p)


@pytest.mark.parametrize("what,needle", [
    ("garbage", "not a readable FITS"), ("empty", "not a readable FITS"),
    ("truncated_data", "truncated"), ("truncated_header", "corrupt"),
    ("truncated_fz", "truncated"),
    ("short_tail", "truncated"), ("no_image", "no image HDU"), ("bad_gzip", "FITS")])
def test_bad_inputs(tmp_path, what, needle):
    path = _bad(tmp_path, what)
    with pytest.raises(InputError) as exc:
        for h in read_image_hdus(path):
            pass
    msg = str(exc.value)
    assert os.path.basename(path) in msg and needle in msg and "\n" not in msg


def test_missing_and_out_of_range(tmp_path):
    with pytest.raises(InputError, match="nope.fits"):
        list(read_image_hdus(str(tmp_path / "nope.fits")))
    path = _mef(tmp_path / "m.fits", n=1, table=True)
    with pytest.raises(InputError, match=r"m\.fits\[5\].*out of range") as exc:
        list(read_image_hdus(ImageSource(path, 5)))
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match=r"m\.fits\[2\].*table"):
        list(read_image_hdus(ImageSource(path, 2)))
    with pytest.raises(InputError, match=r"m\.fits\[0\].*no data"):
        list(read_image_hdus(ImageSource(path, 0)))


def test_check_data():
    with pytest.raises(InputError, match="x.fits\\[1\\]: all pixels are zero"):
        check_data(np.zeros((10, 10), np.float32), "x.fits[1]")
    with pytest.raises(InputError, match="x.fits: all pixels are NaN"):
        check_data(np.full((10, 10), np.nan, np.float32), "x.fits")
    with pytest.raises(InputError, match="all finite pixels are zero"):
        check_data(np.array([[0, np.nan]], np.float32), "x.fits")
    d = np.ones((5, 6), np.float32)
    assert check_data(d, "x") == 0
    d[0, :3] = np.nan
    d[1, 0] = np.inf
    assert check_data(d, "x") == 4


# ------------------------------------------------------------------------ output names

@pytest.mark.parametrize("src,outdir,suffix,expected", [
    ("d/x.fits", None, ".mask.fits", "d/x.mask.fits"),
    ("d/x.fits.fz", None, ".mask.fits", "d/x.mask.fits"),
    ("d/x.fits.gz", "", ".mask.fits", "d/x.mask.fits"),
    ("d/x.fz", None, ".mask.fits", "d/x.mask.fits"),
    ("d/x.FIT", None, ".mask.fits", "d/x.mask.fits"),
    ("x.fts", None, ".mask.fits", "x.mask.fits"),
    ("d/x.img", None, ".mask.fits", "d/x.img.mask.fits"),
    ("d/x.fits", "out", ".mask.fits", "out/x.mask.fits"),
    ("d/x.v2.fits", None, ".flags.fits", "d/x.v2.flags.fits"),
    (ImageSource("d/x.fits", 3), None, ".mask.fits", "d/x.mask3.fits"),
    (ImageSource("d/x.fits.fz", 1), "o", ".mask.fits", "o/x.mask1.fits"),
    (ImageSource("x.fits", 0), None, "_flags", "x_flags0"),
])
def test_output_path(src, outdir, suffix, expected):
    assert output_path(src, outdir, suffix) == os.path.normpath(expected)


def test_output_path_never_the_input():
    with pytest.raises(OutputError):
        output_path("d/x.fits", None, ".fits")


# ------------------------------------------------------------------------ headers

def test_output_header_copies_wcs_and_metadata():
    h = _wcs_header()
    for k, v in [("EXTNAME", "CCD7"), ("EXTVER", 7), ("DATE-OBS", "2020-01-02T03:04:05"),
                 ("MJD-OBS", 58850.12784), ("OBJECT", "M31"), ("FILTER", "r"),
                 ("EXPTIME", 30.0), ("GAIN", 1.5), ("SATURATE", 60000), ("BZERO", 0),
                 ("HISTORY", "old")]:
        h[k] = v
    h["PV1_1"], h["PV2_1"] = 1.0, 0.001
    out = output_header(h, [("MM_UTC", "2024-01-01T00:00:00", "processing date"),
                            ("OBJECT", "override", "replaced"), ("HISTORY", "new")])
    for k in ["CTYPE1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_2", "CD2_2", "PV2_1", "RADESYS",
              "EQUINOX", "EXTNAME", "EXTVER", "DATE-OBS", "MJD-OBS", "FILTER", "EXPTIME"]:
        assert out[k] == h[k], k
    assert "GAIN" not in out and "SATURATE" not in out and "BZERO" not in out
    assert out["MM_UTC"] == "2024-01-01T00:00:00" and out.comments["MM_UTC"] == "processing date"
    assert out["OBJECT"] == "override" and list(out["HISTORY"]) == ["new"]
    win, wout = WCS(h), WCS(out)
    np.testing.assert_allclose(wout.all_pix2world([[1, 1], [40, 30]], 1),
                               win.all_pix2world([[1, 1], [40, 30]], 1))


def test_output_header_cube_and_sip():
    h = _wcs_header()
    h["NAXIS"], h["WCSAXES"] = 3, 3
    h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CD3_3"], h["PC1_3"] = "WAVE", 5e-7, 1e-9, 1e-9, 0.0
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["A_ORDER"], h["B_ORDER"], h["A_2_0"], h["B_0_2"] = 2, 2, 1e-6, -2e-6
    out = output_header(h)
    assert not any(k.endswith("3") or "3_" in k for k in out.keys()), list(out.keys())
    assert "WCSAXES" not in out and out["A_2_0"] == 1e-6 and out["B_0_2"] == -2e-6
    assert out["CTYPE1"] == "RA---TAN-SIP" and out["CRVAL1"] == h["CRVAL1"]
    w = WCS(out)
    assert w.naxis == 2 and w.sip is not None
    assert len(output_header(None)) == 0


# ------------------------------------------------------------------------ writing

def test_write_mef_keeps_structure_and_wcs(tmp_path):
    path = _mef(tmp_path / "m.fits", n=2, table=True)
    entries = []
    for h in read_image_hdus(path):
        if h.kind == "table":
            continue
        flags = None if h.data is None else (h.data > 1000).astype(np.int16)
        entries.append((h.kind, flags, output_header(h.header, [("MP_CR", 0, "bit")])))
    out = write_hdus(str(tmp_path / "m.mask.fits"), entries)
    with fits.open(out, do_not_scale_image_data=True) as f:
        assert len(f) == 3 and f[0].data is None and f[0].header["NAXIS"] == 0
        assert [x.header.get("EXTNAME") for x in f[1:]] == ["CCD1", "CCD2"]
        for i in (1, 2):
            assert f[i].header["BITPIX"] == 16
            assert "BZERO" not in f[i].header and "BSCALE" not in f[i].header
            assert f[i].header["CRVAL1"] == 150.1234567 and f[i].header["MP_CR"] == 0
            np.testing.assert_array_equal(f[i].data, _image(seed=i - 1) > 1000)
    assert os.listdir(tmp_path) == ["m.fits", "m.mask.fits"] or \
        sorted(os.listdir(tmp_path)) == ["m.fits", "m.mask.fits"]


@pytest.mark.parametrize("dtype,bitpix", [(np.int16, 16), (np.int32, 32), (np.uint8, 8),
                                          (np.bool_, 8), (np.uint16, 32), (np.int8, 16),
                                          (np.float32, -32), (np.float16, -32)])
def test_write_dtypes_never_scaled(tmp_path, dtype, bitpix):
    data = (np.arange(12).reshape(3, 4) % 2 * 100).astype(dtype)
    if dtype is np.uint16:
        data[0, 0] = 65535
    hdr = fits.Header([("BZERO", 32768), ("BSCALE", 1), ("OBJECT", "x")])
    path = write_hdus(str(tmp_path / "o.fits"), [("image", data, hdr)])
    with fits.open(path, do_not_scale_image_data=True) as f:
        assert len(f) == 1 and f[0].header["BITPIX"] == bitpix
        assert "BZERO" not in f[0].header and "BSCALE" not in f[0].header
        assert f[0].header["OBJECT"] == "x"
        np.testing.assert_array_equal(f[0].data, data.astype(np.float64))


def test_reread_and_table_passthrough(tmp_path):
    path = _mef(tmp_path / "m.fits", n=1, table=True)
    with open_image(path) as im:
        first, second = im.read(1), im.read(1)
        assert first.data is not second.data and im.hdus[1].data is None
        np.testing.assert_array_equal(first.data, second.data)
        table = fits.BinTableHDU(im._hdul[2].data.copy(), header=im.hdus[2].header)
        entries = [(h.kind, None, h.header) for h in im.hdus[:1]]
        entries += [("image", first.data.astype(np.int16), first.header), table]
    write_hdus(str(tmp_path / "o.fits"), entries)
    with fits.open(tmp_path / "o.fits") as f:
        assert [type(x).__name__ for x in f] == ["PrimaryHDU", "ImageHDU", "BinTableHDU"]
        assert list(f[2].data["a"]) == [1.0, 2.0]


def test_write_cube_float32(tmp_path):
    probs = np.random.default_rng(1).random((14, 8, 9), dtype=np.float32)
    path = write_hdus(str(tmp_path / "p.fits"), [("primary", probs, None)])
    with fits.open(path) as f:
        assert f[0].header["NAXIS"] == 3 and f[0].header["NAXIS3"] == 14
        np.testing.assert_array_equal(f[0].data, probs)


def test_write_no_clobber_and_overwrite(tmp_path):
    out = tmp_path / "o.fits"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError) as exc:
        write_hdus(str(out), [("image", np.zeros((2, 2), np.int16), None)])
    assert "o.fits" in str(exc.value) and "OVERWRITE Y" in str(exc.value)
    assert isinstance(exc.value, InputError) and "\n" not in str(exc.value)
    assert out.read_bytes() == b"precious"
    write_hdus(str(out), [("image", np.ones((2, 2), np.int16), None)], overwrite=True)
    with fits.open(out) as f:
        np.testing.assert_array_equal(f[0].data, np.ones((2, 2)))
    assert os.listdir(tmp_path) == ["o.fits"]


def test_write_failure_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "o.fits"

    def broken(self, name, **kw):
        with open(name, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", broken)
    with pytest.raises(OutputError, match="o.fits.*No space left"):
        write_hdus(str(out), [("image", np.zeros((2, 2), np.int16), None)])
    assert os.listdir(tmp_path) == []

    def interrupted(self, name, **kw):
        open(name, "wb").close()
        raise KeyboardInterrupt

    out.write_bytes(b"old")
    monkeypatch.setattr(fits.HDUList, "writeto", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_hdus(str(out), [("image", np.zeros((2, 2), np.int16), None)], overwrite=True)
    assert os.listdir(tmp_path) == ["o.fits"] and out.read_bytes() == b"old"


def test_write_bad_place(tmp_path):
    with pytest.raises(OutputError, match="does not exist") as exc:
        write_hdus(str(tmp_path / "no" / "o.fits"), [("image", np.zeros((2, 2)), None)])
    assert "o.fits" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(OutputError, match="directory"):
        write_hdus(str(tmp_path), [("image", np.zeros((2, 2)), None)])


def test_write_rejects_misuse(tmp_path):
    with pytest.raises(ValueError):
        write_hdus(str(tmp_path / "a.fits"), [])
    with pytest.raises(ValueError):
        write_hdus(str(tmp_path / "a.fits"), [("image", None, None), ("primary", None, None)])
    with pytest.raises(ValueError):
        write_hdus(str(tmp_path / "a.fits"), [("table", None, None)])
    assert os.listdir(tmp_path) == []


def test_module_does_not_use_kernels():
    with open(fitsio.__file__) as f:
        src = f.read()
    assert "_kernels" not in src
