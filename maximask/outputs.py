"""Outputs that are complete or absent, never over an input, and cleanups that remove only
what maximask provably wrote.

:func:`plan_outputs` checks every output of a run before the first input is read;
:func:`write_atomically` writes a file (FITS, text, JSON, PNG, checkpoint) through a marked
hidden folder and renames it into place; :func:`temporary_output` gives such a folder to
writers of whole directories (model directories).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from typing import Iterable, Sequence

from .errors import InputError, OutputError, OutputExistsError, _describe
from .inputs import ImageSource, _not_a_file

__all__ = ["plan_outputs", "file_identities", "check_not_input", "check_writable", "write_atomically",
           "temporary_path", "temporary_output", "remove_stale_temporaries", "remove_own_temporaries",
           "refuse_existing", "TEMPORARY_MARK", "PAYLOAD"]


def plan_outputs(sources: Sequence[ImageSource], name_output, protect: frozenset):
    """Check the output of each input before any is processed.

    name_output(source) gives an output path (it may raise OutputError). An input fails
    here when its output would be any input of the run (`protect`), the output of an
    earlier input, or in a directory where no file can be created. Returns
    ``(planned, errors)``: the sources whose output is fine, and InputErrors, in input order.
    """
    planned, errors, taken, folders = [], [], {}, {}
    for source in sources:
        try:
            path = name_output(source)
            try:
                check_not_input(path, protect)
            except OutputError:
                raise OutputError(source.name, f"its output {path} is an input of this run: an "
                                               "output never replaces an input, whatever "
                                               "OVERWRITE says (change OUTPUT_SUFFIX or "
                                               "OUTPUT_DIR)") from None
            key = os.path.realpath(path)
            if key in taken:
                raise OutputError(source.name, f"its output {path} is also the output of "
                                               f"{taken[key]}; not processed")
            folder = os.path.dirname(path) or "."
            if folder not in folders:
                try:
                    check_writable(folder)
                    folders[folder] = None
                except OutputError as exc:
                    folders[folder] = exc
            if folders[folder] is not None:
                raise OutputError(source.name, f"output {path}: {folders[folder].problem}")
            taken[key] = source.name
            planned.append(source)
        except InputError as exc:
            errors.append(exc)
    return planned, errors


def file_identities(paths: Iterable[str]) -> frozenset:
    """The (device, inode) of each existing file of `paths`: what :func:`check_not_input`
    protects. Identities, not names, so symbolic and hard links to an input count too."""
    out = set()
    for path in paths:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            out.add((st.st_dev, st.st_ino))
    return frozenset(out)


def check_not_input(path: str, protect: frozenset) -> None:
    """Raise OutputError if `path` is an existing file whose identity is in `protect`."""
    if not protect:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) in protect:
        raise OutputError(path, "is an input of this run: an output is never written over an "
                                "input, whatever OVERWRITE says (change OUTPUT_SUFFIX or OUTPUT_DIR)")


def _directory_problem(folder: str) -> str:
    """Why `folder`, which is not a directory, cannot take outputs: "output directory ..."."""
    if not os.path.lexists(folder):
        return "output directory does not exist"
    problem = _not_a_file(folder, "")
    if not problem:
        return "output directory is a regular file, not a directory"
    if problem.startswith("not a regular file: "):
        return f"output directory is {problem[len('not a regular file: '):]}, not a directory"
    if problem.startswith("a "):
        return f"output directory is {problem.replace(', not a file', '')}"
    return f"output directory: {problem}"


def check_writable(folder: str) -> None:
    """Raise OutputError unless a file can be created in `folder` (tried, then removed).

    os.access is not enough: root may "write" anywhere, yet not create a file in /proc.
    """
    folder = folder or "."
    if not os.path.isdir(folder):
        raise OutputError(folder, _directory_problem(folder))
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".maximask-probe-"):
            pass
    except OSError as exc:
        raise OutputError(folder, f"cannot create files in this directory: {_describe(exc)}") \
            from None


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


_TEMPORARY = re.compile(r"^\..+\.maximask-tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)$")


#: The file that marks a temporary folder as ours; written first, before any payload.
TEMPORARY_MARK = "MAXIMASK-TEMPORARY"


_MARK_TEXT = "maximask temporary output folder\nhost {host}\npid {pid}\n"


#: The name of what is written inside a temporary folder before it is renamed into place.
PAYLOAD = "payload"


_swept: set = set()
_in_use: set = set()  # this process's temporary folders not yet removed (remove_own_temporaries)


def temporary_path(path: str) -> str:
    """The hidden folder that `path` is written in before it is renamed into place.

    ``.NAME.maximask-tmp-HOST-PID``: the folder holds :data:`TEMPORARY_MARK` (written
    first, naming the host and process) and the payload (:data:`PAYLOAD`). A later run on
    this host removes such a folder once its process is dead (:func:`remove_stale_temporaries`):
    the name and the mark together prove that maximask wrote it.
    """
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.maximask-tmp-{_HOST}-{os.getpid()}")


@contextlib.contextmanager
def temporary_output(path: str):
    """Create the marked temporary folder of `path` and yield the payload's path inside it.

    On leaving normally the payload is still there (the caller renames it into place); the
    folder is removed in every case. A folder of this process left by an earlier call is
    removed first (only if it is ours: :func:`_remove_if_ours`).
    """
    tmp = temporary_path(path)
    _remove_if_ours(tmp, check_pid=False)
    _in_use.add(tmp)  # before it exists: a signal at any point leaves it listed
    os.mkdir(tmp)
    try:
        with open(os.path.join(tmp, TEMPORARY_MARK), "x") as f:
            f.write(_MARK_TEXT.format(host=_HOST, pid=os.getpid()))
        yield os.path.join(tmp, PAYLOAD)
    finally:
        if _remove_if_ours(tmp, check_pid=False) or not os.path.lexists(tmp):
            _in_use.discard(tmp)


def remove_own_temporaries():
    """Remove what is left of this process's temporary folders (only if ours, as
    :func:`_remove_if_ours` checks): a signal that lands inside a cleanup interrupts it."""
    for tmp in list(_in_use):
        if _remove_if_ours(tmp, check_pid=False) or not os.path.lexists(tmp):
            _in_use.discard(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # EPERM: someone else's live process
        return True
    return True


def _remove_if_ours(path: str, check_pid: bool = True) -> bool:
    """Remove `path` if it is one of our temporary folders: a real folder (not a link)
    named as :func:`temporary_path` names them, for this host (and a dead process when
    check_pid), holding nothing but :data:`TEMPORARY_MARK` with our text and the payload;
    an empty folder of that name (killed before its mark was written) goes too.
    Anything else is left alone. True when removed."""
    m = _TEMPORARY.match(os.path.basename(path))
    if not m or m.group("host") != _HOST:
        return False
    pid = int(m.group("pid"))
    if check_pid and _alive(pid):
        return False
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            return False
        entries = set(os.listdir(path))
        if entries:
            if not entries <= {TEMPORARY_MARK, PAYLOAD} or TEMPORARY_MARK not in entries:
                return False
            mark = os.path.join(path, TEMPORARY_MARK)
            if os.path.islink(mark):
                return False
            with open(mark) as f:
                if f.read(256) != _MARK_TEXT.format(host=_HOST, pid=pid):
                    return False
            payload = os.path.join(path, PAYLOAD)
            if os.path.isdir(payload) and not os.path.islink(payload):
                shutil.rmtree(payload)
            elif os.path.lexists(payload):
                os.remove(payload)
            os.remove(mark)
        os.rmdir(path)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def remove_stale_temporaries(folder: str) -> list:
    """Remove the temporary folders that dead processes of this host left in `folder`.

    A process killed with SIGKILL cannot remove its temporary folder; the next run that
    writes into the same directory does, but only folders it can prove are ours (the
    name of :func:`temporary_path` and the mark inside: see :func:`_remove_if_ours`);
    a user's file or folder is never removed, whatever its name. Returns the paths removed.
    """
    try:
        entries = [e.name for e in os.scandir(folder or ".") if e.name.startswith(".")]
    except OSError:
        return []
    paths = [os.path.join(folder, name) for name in entries]
    return [p for p in paths if _TEMPORARY.match(os.path.basename(p)) and _remove_if_ours(p)]


def refuse_existing(path: str, overwrite: bool):
    """A before_replace for :func:`write_atomically`: OutputExistsError if `path` exists
    (created meanwhile) and not `overwrite`."""
    def check():
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(path)
    return check


def write_atomically(path: str, write, before_replace=None, protect: frozenset = frozenset()) -> None:
    """Write a file through write(tmp), then rename it to `path`.

    tmp is the payload of a marked hidden folder in `path`'s directory
    (:func:`temporary_output`), so the rename is atomic and no partial file ever stands
    under `path`, even if the process is killed; on any error or interruption (or one
    raised by before_replace(), called just before the rename) the folder is removed, and
    what a SIGKILLed run left is removed by the next write into that directory. A missing
    directory or an OSError while writing or renaming raises OutputError; so does a `path`
    in `protect` (:func:`check_not_input`).
    """
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise OutputError(path, _directory_problem(folder).replace("output directory",
                                                                   f"output directory {folder}", 1))
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_temporaries(folder)
    check_not_input(path, protect)
    try:
        with temporary_output(path) as tmp:
            try:
                write(tmp)
            except OSError as exc:
                raise OutputError(path, f"cannot write output: {_describe(exc)}") from None
            if before_replace is not None:
                before_replace()
            check_not_input(path, protect)
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(path, f"cannot write output: {_describe(exc)}") from None
