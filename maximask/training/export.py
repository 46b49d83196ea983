"""Export a trained MaxiMask or MaxiTrack module as a model directory.

The directory holds what ``maximask/models`` holds for the packaged network, written by
the same graph writer (``maximask._onnx_graphs``) with the module's weights:

    maximask.onnx, maximask_cuda.onnx, maximask.weights    (MaxiMask)
    maxitrack.onnx                                         (MaxiTrack)
    LICENSE      the published weights' licence, which derived weights keep
    model.json   network, software version, SHA-256 of the weights, and the caller's metadata

It is complete or absent: written in a hidden folder beside it and renamed into place;
the marked hidden folders of killed exports are removed by the next export into that
directory (maximask.outputs.remove_stale_temporaries).
"""
import json
import os
import shutil

from maximask import __version__
from maximask.engine import MODELS_DIR
from maximask.errors import OutputError
from maximask.outputs import remove_stale_temporaries, temporary_output
from maximask._onnx_graphs import PUBLISHED_CREDIT, weights_digest, write_maximask, write_maxitrack
from maximask.training.networks import MaxiMask, MaxiTrack, network_weights

PRODUCER = "maximask.training.export"
METADATA_FILE = "model.json"
_WRITERS = {MaxiMask: ("maximask", write_maximask), MaxiTrack: ("maxitrack", write_maxitrack)}


def export_network(module, folder, metadata=None):
    """Write `module` (MaxiMask or MaxiTrack) as the model directory `folder`; return its
    model.json content. `metadata`: JSON-serialisable extras for model.json (base model,
    data, steps, losses...). An existing `folder` is never replaced (OutputError)."""
    try:
        name, write = _WRITERS[type(module)]
    except KeyError:
        raise TypeError(f"cannot export a {type(module).__name__}: expected MaxiMask or MaxiTrack") from None
    folder = os.path.abspath(os.fspath(folder))
    parent = os.path.dirname(folder)
    if os.path.lexists(folder):
        raise OutputError(folder, "model directory already exists; a model directory is never replaced")
    if not os.path.isdir(parent):
        raise OutputError(folder, f"output directory {parent} does not exist")
    weights = network_weights(module)
    info = {"network": name, "software": f"maximask {__version__}", "weights_sha256": weights_digest(weights),
            **(metadata or {})}
    note = f"Written by {PRODUCER} (maximask {__version__}), starting from the published weights. {PUBLISHED_CREDIT}"
    remove_stale_temporaries(parent)  # what killed exports left here
    try:
        with temporary_output(folder) as tmp:
            os.mkdir(tmp)
            files = [os.path.basename(p) for p in write(weights, tmp, note, PRODUCER)]
            shutil.copyfile(os.path.join(MODELS_DIR, "LICENSE"), os.path.join(tmp, "LICENSE"))
            info["files"] = sorted(files)
            with open(os.path.join(tmp, METADATA_FILE), "w") as out:
                json.dump(info, out, indent=2)
                out.write("\n")
            os.rename(tmp, folder)
    except OSError as exc:
        raise OutputError(folder, f"cannot write model directory: {exc.strerror or exc}") from None
    return info
