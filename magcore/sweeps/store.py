"""A directory of run results, one JSON file per run, written atomically.

Layout: a directory holding ``<digest>.json`` files, where ``<digest>`` is
the SHA-256 (hex) of the entry's key in canonical JSON (sorted keys, no
spaces). Files whose names start with ``.`` are temporary and are never
read; a reader needs nothing but a JSON parser. Each file holds one
object:

.. code-block:: text

    {
      "schema": 1,
      "key": {
        "spec": {...},        # RunSpec.describe(): problem (name, class,
                              # config), method, hparams, steps,
                              # batch_size, seed, schedule, warmup,
                              # checkpoints, divergence
        "code": "0.1.0+3f2a..."   # code_version(problem)
      },
      "result": {
        "steps": [0, 5, ...],             # recorded steps
        "metrics": {"loss": [...], ...},  # values at those steps
        "batch_loss": [...],              # minibatch loss of every step
        "diverged": false,
        "diverged_at": null,              # first bad iterate, or null
        "seconds": 0.01, "device": "cpu", "torch_version": "2.13.0"
      }
    }

Non-finite numbers are written as ``null`` (plain JSON has no NaN).

The code version is ``magcore.__version__``, a ``+``, and the first 16
hex digits of the SHA-256 of the source files that decide a run's
numbers: the update rules (``magcore/optim/functional.py``), the engine
and the run description (``magcore/sweeps/engine.py``, ``spec.py``), the
problem contract (``magcore/problems/base.py``) and the module that
defines the problem's class (when it has a source file; a class defined
in an interactive session has none, and then only its ``config()`` and
class name key its results). Editing any of them makes old entries
invisible (they stay on disk), so nothing stale is reused.

Writing is atomic: the entry goes to a temporary file in the same
directory, is flushed and ``fsync``-ed, and ``os.replace`` moves it onto
its final name. A crash leaves either the old state or the new entry,
never a half-written one; a stray temporary file is ignored by readers
and harmless to later writes.
"""

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path

from .engine import RunResult
from .spec import RunSpec

SCHEMA = 1

__all__ = ["ResultStore", "SCHEMA", "code_version", "read_entries"]

_SOURCE_HASHES = {}


def _file_hash(path):
    path = os.path.abspath(path)
    if path not in _SOURCE_HASHES:
        with open(path, "rb") as handle:
            _SOURCE_HASHES[path] = hashlib.sha256(handle.read()).hexdigest()
    return _SOURCE_HASHES[path]


def code_version(problem):
    """The version string of the code that computes a run of ``problem``.

    Returns:
        ``"<magcore.__version__>+<16 hex digits>"``: the digits hash the
        sources listed in the module docstring, including the file that
        defines ``type(problem)``.
    """
    import magcore
    from ..optim import functional
    from ..problems import base
    from . import engine, spec

    files = [inspect.getsourcefile(m)
             for m in (functional, engine, spec, base)]
    try:
        own = inspect.getsourcefile(type(problem))
    except TypeError:
        own = None
    if own is not None and os.path.isfile(own):
        files.append(own)
    digest = hashlib.sha256()
    for path in files:
        digest.update(_file_hash(path).encode())
    return f"{magcore.__version__}+{digest.hexdigest()[:16]}"


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def read_entries(root):
    """Every valid entry of the store at ``root``, as parsed ``dict``.

    Temporary files (names starting with ``.``) and files that do not
    parse, or whose name is not the hash of their key, are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    entries = []
    for path in sorted(root.glob("*.json")):
        if path.name.startswith("."):
            continue
        entry = _read(path)
        if entry is not None:
            entries.append(entry)
    return entries


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            entry = json.load(handle)
        digest = hashlib.sha256(
            _canonical(entry["key"]).encode()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(entry, dict) or entry.get("schema") != SCHEMA \
            or path.name != f"{digest}.json" or "result" not in entry:
        return None
    return entry


class ResultStore:
    """Results keyed by run description and code version, on disk.

    Args:
        root: the directory (created if missing).

    Example:
        >>> import tempfile
        >>> from magcore.problems.toy import LinearRegression
        >>> from magcore.sweeps import RunSpec, run_sweep
        >>> spec = RunSpec(LinearRegression(n_train=32, dim=2), "sgd",
        ...                {"lr": 0.1}, steps=5, batch_size=4)
        >>> with tempfile.TemporaryDirectory() as root:
        ...     store = ResultStore(root)
        ...     a = run_sweep([spec], store, "cpu", progress=False)
        ...     b = run_sweep([spec], store, "cpu", progress=False)
        >>> a.n_trained, b.n_trained, b.n_cached
        (1, 0, 1)
    """

    def __init__(self, root):
        if not isinstance(root, (str, os.PathLike)):
            raise ValueError(f"Invalid root: {root!r} (expected a path)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, spec):
        """The key of ``spec``: its description and the code version."""
        if not isinstance(spec, RunSpec):
            raise ValueError(f"Invalid spec: {spec!r} (expected a RunSpec)")
        return {"spec": spec.describe(), "code": code_version(spec.problem)}

    def path(self, spec):
        """The file that holds (or will hold) the result of ``spec``."""
        digest = hashlib.sha256(
            _canonical(self.key(spec)).encode()).hexdigest()
        return self.root / f"{digest}.json"

    def get(self, spec):
        """The stored :class:`RunResult` of ``spec``, or ``None``."""
        path = self.path(spec)
        if not path.exists():
            return None
        entry = _read(path)
        if entry is None:
            return None
        return RunResult.from_dict(spec, entry["result"])

    def __contains__(self, spec):
        return self.get(spec) is not None

    def __len__(self):
        return len(read_entries(self.root))

    def put(self, result):
        """Write ``result`` atomically under its spec's key."""
        if not isinstance(result, RunResult):
            raise ValueError(f"Invalid result: {result!r} (expected a "
                             "RunResult)")
        entry = {"schema": SCHEMA, "key": self.key(result.spec),
                 "result": result.to_dict()}
        atomic_write(self.path(result.spec), _canonical(entry))


def atomic_write(path, text):
    """Write ``text`` to ``path`` so that readers see all of it or none.

    The text goes to a temporary file ``.<name>.<random>.tmp`` in the same
    directory, is flushed and ``fsync``-ed, and then ``os.replace`` puts
    it in place (atomic on POSIX and Windows within one file system);
    the directory is ``fsync``-ed too where the platform allows it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
