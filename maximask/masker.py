"""The MaxiMask pipeline: image -> background -> compressed tiles -> network -> flag planes.

    masker = Masker(OUTPUT_TYPE="FLAGS", CLASSES="CR,SAT")   # keywords as in `maximask -d`
    flags = masker.run(image)              # (h, w) int16; cubes give (planes, h, w)
    masker.run_file("image.fits")          # writes image.mask.fits, returns its path

Each step is one call into maximask.kernels or maximask.engine; post-processing is fused
into stitching, so a FLAGS run never holds the 14 probability planes of a whole image.
"""
import datetime
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import __version__, errors, fitsio, _host_pipeline, inputs, kernels, outputs, trails, _workunits
from .checkimages import CheckImages, PlaneProducts
from .classes import ABBREVIATIONS, CLASSES
from .keywords import MASK_KEYWORDS
from .engine import EngineError, is_interrupt, model_info, open_network, with_model_thresholds
from ._images import pixel_array
from ._progress import progress_bar

#: OUTPUT_TYPE -> (stitch mode, what each output HDU holds)
OUTPUT_TYPES = {
    "FLAGS": ("flags", "bit k set where class k is flagged"),
    "MASKS": ("binary", "one 0/1 plane per class"),
    "PROBA": ("proba", "one probability plane per class"),
    "WEIGHT": ("weight", "1 where no selected class is flagged, else 0"),
}


class Masker:
    """MaxiMask on images and files, configured by the keywords of ``maximask -d``.

    config: a :class:`maximask.config.Config` (default: the internal defaults); keywords
    (any case) override it, e.g. ``Masker(output_type="MASKS", classes=["CR", "SAT"])``.
    The network session opens on first use.
    """

    def __init__(self, config=None, **keywords):
        config = config if config is not None else MASK_KEYWORDS.defaults()
        self.config = with_model_thresholds(config.replace(**keywords) if keywords else config)
        c = self.config
        self.mode = OUTPUT_TYPES[c.OUTPUT_TYPE][0]
        # planes follow the class table's order, whatever order CLASSES lists them in
        self.classes = np.array(sorted(ABBREVIATIONS.index(a) for a in c.CLASSES), dtype=np.int64)
        self.model = model_info("maximask", c.NETWORK)  # checks a NETWORK directory early
        self.factors = (kernels.prior_factors(c.PRIORS, self.model["training_priors"])
                        if c.PRIOR_CORRECTION else None)
        self.thresholds = np.asarray(c.THRESHOLDS, dtype=np.float32)
        top_bit = max((k for k in self.classes if k != kernels.BACKGROUND_CLASS), default=0)
        self.flag_dtype = np.int16 if top_bit <= 14 else np.int32
        self.checks = CheckImages(self.config)
        #: batches in flight while the host cuts and stitches (maximask._host_pipeline); 0: the
        #: sequential loop, one batch cut, run and stitched after the other
        self.depth = _host_pipeline.DEPTH
        self._network = None

    @property
    def network(self):
        if self._network is None:
            c = self.config
            self._network = open_network("maximask", device=c.DEVICE, nthreads=c.NTHREADS, workers=0,
                                         model_dir=c.NETWORK)
        return self._network

    @property
    def quiet(self):
        return self.config.VERBOSE_TYPE == "QUIET"

    # ------------------------------------------------------------------ arrays

    def empty_output(self, shape):
        """A zeroed output for a 2-D image of `shape` (see maximask.kernels.output_array)."""
        return kernels.output_array(self.mode, shape, len(self.classes), self.flag_dtype)

    def run(self, image, desc=None, products=None):
        """Mask a 2-D image (h, w) or a cube (planes, h, w) of pixel values (ADU).

        Returns, per plane: FLAGS (h, w) int16; MASKS (K, h, w) uint8; PROBA (K, h, w)
        float32; WEIGHT (h, w) uint8 — K the selected classes in class-table order; a cube
        gives the same with a leading planes axis.
        products: a list to which one checkimages.PlaneProducts per plane is appended,
        holding what the configured check-images need.

        Raises TypeError for a path (use :meth:`run_file`), complex or non-numeric data,
        ValueError for another shape or pixels all zero or all NaN.
        """
        return self._run_checked(pixel_array(image), desc, products)

    def run_nddata(self, data, mask_classes=None):
        """Mask an astropy NDData/CCDData: a new one with ``.flags`` (FLAGS plane) and ``.mask``
        (the union of ``mask_classes``, default CLASSES), as :func:`maximask.nddata.mask_nddata`."""
        from .nddata import mask_nddata

        return mask_nddata(self, data, mask_classes)

    def _run_checked(self, image, desc=None, products=None):
        if image.ndim == 3:
            return np.stack([self._run_checked(plane, desc, products) for plane in image])
        return self._run_plane(np.ascontiguousarray(image, dtype=np.float32), desc, products)

    def _run_plane(self, image, desc, products=None):
        plane, kept = self._compress(image, products is not None)
        out = self.run_compressed(plane, desc, kept.flags)
        if self.config.TRAIL_SEARCH:  # the trail stage, after the network (maximask.trails)
            kept.trails = trails.flag_trails(image, out, self.mode, self.classes, self.thresholds, kept.level,
                                             kept.sigma, self.config.BACK_SIZE, also=kept.flags)
        if self.mode == "weight":
            out[np.isnan(image)] = 0  # no data there: no weight
        if products is not None:
            products.append(kept)
        return out

    def _compress(self, image, with_products, in_place=False):
        """The network's input plane of a float32 (h, w) image (written over the image if
        in_place) and the PlaneProducts the check-images need (with_products)."""
        kept = PlaneProducts()
        if with_products and self.checks.needs_background:  # the same plane, with maps
            kept.level, kept.sigma = kernels.estimate_background(image, self.config.BACK_SIZE)
            plane = kernels.asinh_compress(image, kept.level, kept.sigma)
        else:  # each pixel once
            plane = kernels.compress_image(image, self.config.BACK_SIZE, out=image if in_place else None)
        if (with_products and self.checks.needs_flags) or self.config.TRAIL_SEARCH:
            # every class, int16: the check-images' flags, and the trail stage reads SP and BBG there
            kept.flags = kernels.output_array("flags", image.shape)
        return plane, kept

    def run_compressed(self, plane, desc=None, all_flags=None):
        """Mask the network's input plane (h, w) float32, already background-normalised and
        compressed (``kernels.compress_image`` or ``kernels.asinh_compress`` with another
        background, as the simulator's realism check does with the clean image's).
        all_flags: optional zeroed (h, w) int16 array that also gets every class's flags."""
        c = self.config
        tile, margin, batch_size = c.TILE_SIZE, c.TILE_MARGIN, c.BATCH_SIZE
        plane = np.ascontiguousarray(plane, dtype=np.float32)
        if self.depth:
            return _host_pipeline.mask_plane(self, plane, all_flags, desc)
        origins = kernels.tile_origins(plane.shape[0], plane.shape[1], tile, margin)
        # Tiles that keep the same window (interior, first/last row or column) are batched
        # together: the network computes only the window's probabilities.
        windows, group = np.unique(kernels.tile_windows(plane.shape[0], plane.shape[1], tile, margin),
                                   axis=0, return_inverse=True)
        batches = []
        for k, window in enumerate(windows):
            members = np.flatnonzero(group.ravel() == k)
            batches += [(window, members[s:s + batch_size]) for s in range(0, len(members), batch_size)]
        out = self.empty_output(plane.shape)
        network = self.network

        def mask_batch(batch):  # the windows partition the image: batches write disjoint pixels
            window, members = batch
            tiles = kernels.extract_tiles(plane, origins[members], tile)
            probs = network(tiles, window)
            kernels.stitch(probs, origins[members], out, window, self.mode,
                           classes=self.classes, factors=self.factors, thresholds=self.thresholds)
            if all_flags is not None:
                kernels.stitch(probs, origins[members], all_flags, window, "flags",
                               factors=self.factors, thresholds=self.thresholds)

        pool = ThreadPoolExecutor(network.workers)
        stopped = False
        try:
            for _ in progress_bar(pool.map(mask_batch, batches), total=len(batches), desc=desc,
                                  unit="batch", leave=False, quiet=self.quiet or len(batches) < 2):
                pass
        except BaseException as exc:
            if is_interrupt(exc):  # end the runs under way too, rather than finish their batches
                network.stop()
                stopped = True
            raise
        finally:  # interrupted: drop the batches not started rather than finish the image
            pool.shutdown(wait=True, cancel_futures=True)
            if stopped:
                network.resume()
        return out

    # ------------------------------------------------------------------ files

    def header_cards(self):
        """Processing metadata cards for each output HDU: (keyword, value, comment)."""
        c = self.config
        model, digest = self.model["label"], self.model["weights_sha256"]
        cards = [
            ("MM_VERS", __version__, "maximask version"),
            # a long model directory fills the card (CONTINUE cards beyond 68 characters)
            ("MM_MODEL", model, "network weights" if len(model) <= 48 else ""),
            ("MM_WSHA", digest[:16], "SHA-256 of the network weights, first 16 hex"),
            ("MM_DATE", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
             "UTC processing date"),
            ("MM_OTYPE", c.OUTPUT_TYPE, OUTPUT_TYPES[c.OUTPUT_TYPE][1]),
            ("MM_CLASS", ",".join(ABBREVIATIONS[k] for k in self.classes), "selected classes"),
            ("MM_PRIOR", bool(c.PRIOR_CORRECTION), "prior correction applied"),
            ("MM_BACKS", c.BACK_SIZE, "[pixel] background mesh size"),
            ("MM_TILE", c.TILE_SIZE, "[pixel] network tile size"),
            ("MM_MARGN", c.TILE_MARGIN, "[pixel] tile margin not kept"),
        ]
        if c.TRAIL_SEARCH:
            cards.append(("MM_TRAIL", True, "trail stage: straight segments flagged TRL"))
        for plane, k in enumerate(self.classes):
            cls = CLASSES[k]
            if self.mode == "flags":
                if k != kernels.BACKGROUND_CLASS:
                    cards.append((f"MP_{cls.abbr}", int(k), f"bit {k} (value {1 << k}): {cls.name}"))
            elif self.mode in ("binary", "proba"):
                cards.append((f"{cls.abbr}_DIM", plane, f"plane of {cls.name} (0-based)"))
            if c.PRIOR_CORRECTION:
                cards.append((f"{cls.abbr}_PR", float(c.PRIORS[k]), f"{cls.abbr} prior"))
            if self.mode != "proba":
                cards.append((f"{cls.abbr}_TH", float(c.THRESHOLDS[k]), f"{cls.abbr} threshold"))
        return cards

    def output_path(self, source):
        c = self.config
        return fitsio.output_path(source, c.OUTPUT_DIR or None, c.OUTPUT_SUFFIX)

    def run_file(self, source, log=None, protect=frozenset()):
        """Mask every image HDU of a FITS file and write the output file; return its path.

        source: a path, ``path[N]`` or a :class:`maximask.inputs.ImageSource`. The output
        keeps the input's HDU structure (an empty HDU where a table was). Raises
        :class:`maximask.errors.InputError` (one-line message) on bad input or output
        (:class:`~maximask.errors.SkippedInput` for one of our own outputs).
        log: optional callable taking one line of text (warnings, FULL verbosity).
        protect: identities (:func:`maximask.outputs.file_identities`) of files never to be
        written over, e.g. every input of a run; the input itself always is.
        """
        if not self.depth:
            plan = self.plan_file(source, log, protect)
            return self.finish_file(plan, {unit: self.run_unit(unit) for unit in plan.units}, log)
        ((_, outcome),) = self.run_files([source], log, protect)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_files(self, sources, log=None, protect=frozenset()):
        """Mask files one after the other as :meth:`run_file` does, the next units read and
        compressed while the network runs and each output written while the next file is
        masked (see maximask._host_pipeline). Yields ``(source, path)``, or ``(source, exc)``
        with the InputError or EngineError that failed that file, in the order given."""
        if not self.depth:
            for source in sources:
                try:
                    yield source, self.run_file(source, log, protect)
                except (errors.InputError, EngineError) as exc:
                    yield source, exc
            return
        yield from _host_pipeline.mask_files(self, sources, log, protect)

    def plan_file(self, source, log=None, protect=frozenset()):
        """Split a file into units of work (a WorkUnit per image HDU or cube plane).

        Reads headers only; raises InputError on a bad input, an output that exists or
        would be written over a protected file (see :meth:`run_file`).
        """
        if isinstance(source, str):
            source = inputs.find_inputs([source], self.config.OUTPUT_SUFFIX)[0]
        log = log or (lambda line: None)
        path = self.output_path(source)
        protect = frozenset(protect) | outputs.file_identities([source.path])
        outputs.check_not_input(path, protect)
        if not self.config.OVERWRITE and os.path.lexists(path):
            raise errors.OutputExistsError(path)
        cards = self.header_cards()
        checks = self.checks.for_file(source, path, cards, protect) if self.checks else None
        entries = []
        with fitsio.open_image(source) as image:
            for info in image.hdus:
                if info.maskable:
                    entries.append((info.kind, _workunits.units_of(source.path, info),
                                    fitsio.output_header(info.header, cards), info))
                else:  # an empty HDU keeps its place: HDU N of the output is HDU N of the input
                    kind, header = fitsio.empty_output(info)
                    entries.append((kind, None, header, info))
                    if fitsio.PLACEHOLDER_CARD in header:
                        log(f"{info.name}: not masked ({info.reason}): an empty HDU keeps its place")
        return _workunits.FilePlan(source, path, entries, protect, checks)

    def run_unit(self, unit):
        """Mask one unit (an image HDU or cube plane), reading its pixels: a UnitResult.

        With check-images, the result also carries the pixels and the plane's products.
        """
        started = time.perf_counter()
        data, lines, failure = _workunits.read_checked(unit)
        products = [] if self.checks or self.config.TRAIL_SEARCH else None
        if failure:
            result = _workunits.UnitResult(self.empty_output(data.shape), lines, failure)
        else:
            result = _workunits.UnitResult(self._run_checked(data, desc=unit.name, products=products), lines,
                                          seconds=time.perf_counter() - started, provider=self.network.provider)
        if self.checks:
            result.data, result.products = data, products or [PlaneProducts()]
        result.trails = sum(len(p.trails) for p in products or [])
        return result

    def prepare_unit(self, unit, data, started):
        """A unit's pixels (float32 (h, w), ours to overwrite), checked and compressed for
        the pipeline: a _host_pipeline.Prepared. ``started``: perf_counter() before reading."""
        prepared = _host_pipeline.Prepared(unit, started)
        prepared.shape = data.shape
        try:
            nbad = fitsio.check_data(data, unit.name)
        except errors.InputError as exc:
            prepared.failure = (exc.name, exc.problem)
        else:
            if nbad:
                prepared.lines = [f"{unit.name}: {nbad} NaN or infinite pixels (estimated as 0)"]
        keep = bool(self.checks) or self.mode == "weight" or self.config.TRAIL_SEARCH
        if keep:
            prepared.data = data
        if not prepared.failure:
            prepared.plane, prepared.kept = self._compress(np.ascontiguousarray(data, dtype=np.float32),
                                                           bool(self.checks), in_place=not keep)
        return prepared

    def unit_result(self, prepared, out, all_flags, seconds=0.0):
        """The UnitResult of a prepared unit masked into `out` (None for a failed unit)."""
        if prepared.failure:
            result = _workunits.UnitResult(self.empty_output(prepared.shape), prepared.lines, prepared.failure)
        else:
            kept = prepared.kept
            # out is None for a unit left unmasked because its file already failed
            if self.config.TRAIL_SEARCH and out is not None:  # the trail stage, after the network (maximask.trails)
                kept.trails = trails.flag_trails(np.ascontiguousarray(prepared.data, dtype=np.float32), out,
                                                 self.mode, self.classes, self.thresholds, kept.level, kept.sigma,
                                                 self.config.BACK_SIZE, also=kept.flags)
            if self.mode == "weight" and out is not None:
                out[np.isnan(prepared.data)] = 0  # no data there: no weight
            result = _workunits.UnitResult(out, prepared.lines, seconds=seconds, provider=self.network.provider)
            result.trails = len(kept.trails)
        if self.checks:
            result.data = prepared.data
            result.products = [prepared.kept] if prepared.kept is not None else [PlaneProducts()]
        return result

    def finish_file(self, plan, results, log=None):
        """Assemble the units' results ({unit: UnitResult}) in HDU order and write the output
        (and the check-images). Logs the units' lines; raises InputError when no unit was usable.
        """
        log = log or (lambda line: None)
        entries, failures, checks = [], [], plan.checks
        for kind, units, header, info in plan.entries:
            if units is None:
                entries.append((kind, None, header))
                if checks:
                    checks.add_empty(info)
                continue
            for unit in units:
                done = results[unit]
                for line in done.lines:
                    log(line)
                if done.failure:
                    failures.append(errors.InputError(*done.failure))
                elif self.config.VERBOSE_TYPE == "FULL":
                    mpix = unit.pixels / 1e6
                    log(f"{unit.name}: {mpix:.2f} Mpix in {done.seconds:.2f} s "
                        f"({mpix / done.seconds:.2f} Mpix/s, {done.provider})")
            if self.config.TRAIL_SEARCH:
                header["MM_NTRL"] = (sum(results[u].trails for u in units), "trail segments the trail stage found")
            whole = units[0].plane is None
            planes = [results[unit].value for unit in units]
            entries.append((kind, planes[0] if whole else np.stack(planes), header))
            if checks:
                data = [results[unit].data for unit in units]
                checks.add(info, data[0] if whole else np.stack(data),
                           [p for unit in units for p in results[unit].products])
        if failures and len(failures) == len(plan.units):  # nothing worth writing
            raise errors.InputError(failures[0].name, f"{failures[0].problem}: nothing to mask, "
                                                      "no output written")
        for exc in failures:
            log(f"{exc}: its output HDU is left at 0")
        if checks:
            log(f"{plan.source.name} -> {', '.join(checks.write())}")
        return fitsio.write_hdus(plan.output, entries, overwrite=self.config.OVERWRITE,
                                 protect=plan.protect)
