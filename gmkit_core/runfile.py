"""Guards for the run file a training writes: one naming rule, writable before training, never two writers.

- Run files end in ``.h5`` (``train --out`` and ``--resume`` alike).
- The folder is probed for writing before training starts, so a read-only
  destination fails in the first second, not after the last step.
- An existing file is replaced only with ``force`` (or when resuming it).
- :func:`lock` holds an exclusive lock beside the file while a training runs,
  so a second ``gmkit train`` on the same ``--out`` fails at once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

__all__ = ["check_run_path", "check_writable", "lock"]


def check_run_path(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a run file path: ``.h5`` suffix and an existing folder."""
    path = Path(path)
    if path.suffix != ".h5":
        raise ConfigError(f"{option} {path}: run files end in .h5 (e.g. {path.with_suffix('.h5').name})")
    if not path.parent.exists():
        raise ConfigError(f"{option} {path}: folder {path.parent} does not exist")
    if not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: {path.parent} is not a folder")
    return path


def check_writable(path: Path, option: str = "--out") -> None:
    """Create and remove a temporary file beside ``path``: a read-only folder fails here."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {path.parent} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path}: the file is not writable")


@contextlib.contextmanager
def lock(path: Path, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on ``.NAME.lock`` beside ``path`` (POSIX ``flock``; a no-op where it is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, single writer is the user's to ensure
        yield
        return
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ConfigError(
                f"{option} {path}: another gmkit train is writing this run (pid {holder}); "
                "wait for it or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                lock_path.unlink()
