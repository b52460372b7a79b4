"""Opening the files of a run directory: the one module that does, because a run directory is untrusted.

People send each other run directories (a colleague's run, a CI artefact, a download), so anything
inside one may be hostile: a ``reward.py`` that is a symlink to ``~/.ssh/id_rsa``, a ``run.lock``
that points at a shell start-up file, a ``gen-000`` that is a symlink to ``/etc``. Every read and
write of a run's files goes through ``RunFiles`` (a test walks the package to hold that):

- a path is taken relative to the run's root, lexically; one outside the root is refused;
- from a descriptor of the root, every folder on the way is opened with ``O_NOFOLLOW`` and so is the
  file itself: a symlink anywhere inside the run is refused (``RefusedFileError``, one line), so a
  read resolves inside the run or not at all, and a write never lands outside it;
- reads take regular files only (a FIFO would block, a device never ends), and at most a stated size;
- writes are atomic: a temp file made with ``O_EXCL`` in the same folder, fsync'd, renamed over the
  target (a rename replaces a symlink planted at the target, never follows it), the folder fsync'd;
- a file appended to or locked (``web-job.log``, ``run.lock``) must be a regular file with one link.

The root itself is where the user pointed (a path they gave, possibly through a symlink of theirs):
it is resolved the normal way, once per call. Hard links into a run are not refused on read (making
one needs access to the file already); they are refused for files that are appended to or locked.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rewardgen.errors import UserError

#: the largest file a reader takes by default (a resume state is the largest a run holds)
MAX_READ_BYTES = 256 * 1024 * 1024
#: the largest JSON file
MAX_JSON_BYTES = 64 * 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class RunStoreError(UserError):
    """A run directory that is missing, corrupt or busy; the message is for the user."""


class CorruptFileError(RunStoreError):
    """A run-store file that exists but cannot be read or is not JSON (``read_json``); ``path`` and
    ``reason`` say which and why, for callers that report it in their own words."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"corrupt file {path}: {reason}")
        self.path, self.reason = Path(path), reason


class RefusedFileError(CorruptFileError):
    """A path in a run that rewardgen will not open: a symlink, outside the run, not a regular file,
    too large. A ``CorruptFileError``, so the report and the web UI show it as a damaged file."""

    def __init__(self, path: Path, reason: str):
        super().__init__(path, reason)
        self.args = (f"refused {path}: {reason}",)


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:  # not a run's file
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class RunFiles:
    """The files of the run directory ``root``; every method takes a path inside it (absolute, or
    relative to the root) and refuses one that leaves it or passes a symlink."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # ----- paths
    def relative(self, path: Path | str) -> tuple[str, ...]:
        """The components of ``path`` below the root; RefusedFileError when it is not below it."""
        p = Path(path)
        full = os.path.abspath(p if p.is_absolute() else self.root / p)
        root = os.path.abspath(self.root)
        if full == root:
            return ()
        if not full.startswith(root.rstrip("/") + "/"):
            raise RefusedFileError(Path(path), f"it is not inside the run {self.root}")
        return tuple(Path(full[len(root.rstrip("/")) + 1:]).parts)

    def _shown(self, parts: tuple[str, ...]) -> Path:
        return self.root.joinpath(*parts)

    # ----- descriptors
    def _root_fd(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RunStoreError(f"no run directory at {self.root}") from None
        except NotADirectoryError:
            raise RunStoreError(f"{self.root} is not a directory") from None

    def _step(self, fd: int, name: str, shown: Path, create: bool) -> int:
        """The folder ``name`` in the folder ``fd`` (made when ``create``), never through a symlink."""
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                self._refuse_kind(fd, name, shown)
            raise

    def _refuse_kind(self, fd: int, name: str, shown: Path) -> None:
        try:
            st = os.lstat(name, dir_fd=fd)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise RefusedFileError(shown, "it is a symbolic link (a run's files must lie inside the run; "
                                          "rewardgen follows no link in a run directory)")
        if not stat.S_ISDIR(st.st_mode):
            raise RefusedFileError(shown, "it is not a folder")

    @contextmanager
    def _folder(self, parts: tuple[str, ...], create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``parts`` below the root, reached without following a link (made,
        the root too, when ``create``)."""
        if create:
            os.makedirs(self.root, exist_ok=True)
        fd = self._root_fd()
        try:
            for i, name in enumerate(parts):
                nfd = self._step(fd, name, self._shown(parts[: i + 1]), create)
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    def _split(self, path: Path | str) -> tuple[tuple[str, ...], str]:
        parts = self.relative(path)
        if not parts:
            raise RefusedFileError(Path(path), "it is the run directory itself, not a file in it")
        return parts[:-1], parts[-1]

    def _open_file(self, dfd: int, name: str, flags: int, shown: Path, mode: int = 0o644) -> int:
        try:
            fd = os.open(name, flags, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RefusedFileError(shown, "it is a symbolic link (a run's files must lie inside the run; "
                                              "rewardgen follows no link in a run directory)") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RefusedFileError(shown, "it is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    # ----- reading
    def open_fd(self, path: Path | str) -> int:
        """A read-only descriptor of the regular file ``path`` (the caller closes it)."""
        folder, name = self._split(path)
        shown = Path(self._shown(self.relative(path)))
        with self._folder(folder) as dfd:
            fd = self._open_file(dfd, name, _READ_FLAGS, shown)
        os.set_blocking(fd, True)
        return fd

    def open_read(self, path: Path | str) -> BinaryIO:
        """``path`` opened for reading in binary mode (a regular file inside the run)."""
        return os.fdopen(self.open_fd(path), "rb")

    def read_bytes(self, path: Path | str, limit: int = MAX_READ_BYTES) -> bytes:
        """The bytes of ``path``; RefusedFileError past ``limit`` bytes (nothing more is read)."""
        with self.open_read(path) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise RefusedFileError(self._shown(self.relative(path)), f"it is larger than {limit} bytes")
        return data

    def read_text(self, path: Path | str, limit: int = MAX_READ_BYTES, errors: str = "strict") -> str:
        """``path`` decoded as UTF-8 (``errors`` as for ``bytes.decode``)."""
        return self.read_bytes(path, limit).decode("utf-8", errors)

    def read_json(self, path: Path | str) -> Any:
        """The JSON value in ``path``: None when it does not exist (writes are atomic, so a file is whole
        or absent); ``CorruptFileError`` naming the path when it cannot be read or does not parse (a
        ``RefusedFileError`` when it is a symlink or otherwise refused)."""
        try:
            raw = self.read_bytes(path, MAX_JSON_BYTES)
        except FileNotFoundError:
            return None
        except RefusedFileError:
            raise
        except OSError as exc:
            raise CorruptFileError(self._shown(self.relative(path)), exc.strerror or str(exc)) from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptFileError(self._shown(self.relative(path)), str(exc)) from None

    def kind(self, path: Path | str) -> str | None:
        """"file", "dir", "link", "other", or None when it does not exist (or a folder on the way is
        missing, a link or not a folder); never follows a link."""
        parts = self.relative(path)
        if not parts:
            return "dir" if os.path.isdir(self.root) else None
        try:
            with self._folder(parts[:-1]) as dfd:
                st = os.lstat(parts[-1], dir_fd=dfd)
        except (OSError, RunStoreError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        return "file" if stat.S_ISREG(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "other"

    def is_file(self, path: Path | str) -> bool:
        """A regular file reached with no link on the way."""
        return self.kind(path) == "file"

    def is_dir(self, path: Path | str) -> bool:
        """A folder reached with no link on the way."""
        return self.kind(path) == "dir"

    def listdir(self, path: Path | str = ".", pattern: str = "*") -> list[str]:
        """Names in the folder ``path`` matching the glob ``pattern``, sorted ([] when it is missing)."""
        try:
            with self._folder(self.relative(path)) as dfd:
                names = os.listdir(dfd)
        except FileNotFoundError:
            return []
        except RunStoreError:
            if not os.path.lexists(self.root):
                return []
            raise
        return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

    # ----- writing
    def mkdir(self, path: Path | str) -> None:
        """Make the folder ``path`` and those above it inside the run (none through a link)."""
        with self._folder(self.relative(path), create=True):
            pass

    @contextmanager
    def folder_path(self, path: Path | str, create: bool = True) -> Iterator[str]:
        """A path naming the folder ``path`` through the descriptor it was opened by
        (``/proc/self/fd/N``), for a library that takes a folder path (TensorBoard's writer): what it
        writes lands in that folder even if a name on the way is swapped for a link meanwhile."""
        with self._folder(self.relative(path), create=create) as dfd:
            yield f"/proc/self/fd/{dfd}"

    def write_bytes(self, path: Path | str, data: bytes, mode: int = 0o666) -> None:
        """Write ``data`` to ``path`` atomically (temp file, fsync, rename), with the permissions a
        plain ``open()`` would give (``mode`` less the umask)."""
        folder, name = self._split(path)
        with self._folder(folder, create=True) as dfd:
            tmp = f".{name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                    os.fchmod(f.fileno(), mode & ~_umask())
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except FileNotFoundError:
                    pass
                raise
            os.fsync(dfd)

    def write_text(self, path: Path | str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def write_json(self, path: Path | str, obj: Any) -> None:
        self.write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")

    def unlink(self, path: Path | str) -> None:
        """Remove the file ``path`` (a link is removed itself, never what it names); missing is fine."""
        folder, name = self._split(path)
        try:
            with self._folder(folder) as dfd:
                os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass

    def _own_file(self, path: Path | str, flags: int) -> int:
        """A descriptor of the regular, singly linked file ``path`` opened with ``flags`` (created if
        missing): for files rewardgen appends to or locks."""
        folder, name = self._split(path)
        shown = self._shown(self.relative(path))
        with self._folder(folder, create=True) as dfd:
            fd = self._open_file(dfd, name, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, shown)
        try:
            if os.fstat(fd).st_nlink != 1:
                raise RefusedFileError(shown, "it has more than one name (a hard link): rewardgen will not write "
                                              "into a file that may belong elsewhere")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_append(self, path: Path | str) -> BinaryIO:
        """``path`` opened to append to (created if missing): a log that is only shown."""
        return os.fdopen(self._own_file(path, os.O_WRONLY | os.O_APPEND), "ab")

    def open_lock(self, path: Path | str) -> int:
        """A read-write descriptor of the lock file ``path`` (created if missing), for ``flock``."""
        return self._own_file(path, os.O_RDWR)

    def copy_from(self, source: RunFiles, folder: str) -> int:
        """Copy the regular files of ``source``'s ``folder`` (one level; another run's) into this run's
        ``folder``; returns how many. Links and anything else are skipped, each read is bounded."""
        n = 0
        for name in source.listdir(folder):
            if source.kind(f"{folder}/{name}") == "file":
                self.write_bytes(f"{folder}/{name}", source.read_bytes(f"{folder}/{name}", MAX_JSON_BYTES))
                n += 1
        return n


__all__ = ["MAX_JSON_BYTES", "MAX_READ_BYTES", "CorruptFileError", "RefusedFileError", "RunFiles", "RunStoreError"]
