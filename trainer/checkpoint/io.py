"""Writing checkpoints so that a crash never leaves a torn file, and reading them so that a
file can never run code.

A save goes to a temporary file in the target folder (never ``$TMPDIR``: a rename across
file systems is not atomic and the temporary folder may be small), is flushed and fsynced,
then renamed over the target with ``os.replace`` and the folder entry fsynced. Until the
rename, the previous checkpoint is untouched; after it, the new one is complete on disk.

A load uses ``torch.load(weights_only=True)``, which refuses any pickle that imports or
calls something, and turns each way a file can be wrong into a :class:`CheckpointError`
that names the file and the fault.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
import pickle
import re
import secrets
import shutil
import socket
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ember.trainer.checkpoint.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointSaveError,
    NewerCheckpointVersionError,
    NotACheckpointError,
    StateMismatchError,
    TruncatedCheckpointError,
    UnsafeCheckpointError,
    UnsafeValueError,
)

#: The layout version of the checkpoint dictionary. Raise it when a key changes meaning;
#: a file with a higher number is refused with a message naming both versions.
FORMAT_VERSION = 1

#: Suffix of in-flight temporary files; a process killed mid-save leaves one behind.
TEMP_SUFFIX = ".ember-tmp"

_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[0-9a-f]{16}"
    + re.escape(TEMP_SUFFIX)
    + "$"
)
_STALE_AFTER_S = 24 * 3600
_LIST_LIMIT = 10


@functools.lru_cache(maxsize=1)
def ember_version() -> str:
    """The installed ember version, recorded in every checkpoint."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ember")
    except PackageNotFoundError:
        from ember.hub import __version__

        return __version__


def checkpoint_header() -> dict[str, Any]:
    """The entries every ember checkpoint starts with: format and ember version."""
    return {"format_version": FORMAT_VERSION, "ember_version": ember_version()}


# --------------------------------------------------------------------------- saving

_SAFE_LEAVES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    torch.Size,
    torch.dtype,
    torch.device,
)
_SAFE_CONTAINERS: tuple[type, ...] = (dict, OrderedDict, list, tuple, set)


def _key_repr(key: Any) -> str:
    return f"[{key!r}]"


def find_unsafe_value(obj: Any, where: str = "checkpoint") -> tuple[str, Any] | None:
    """The first value in ``obj`` that ``torch.load(weights_only=True)`` would refuse.

    Returns ``(where, value)`` with ``where`` the access path (``checkpoint['callbacks']
    ['X']['y']``), or ``None`` when everything is tensors, plain data and the containers
    the safe loader accepts (plus anything registered with
    ``torch.serialization.add_safe_globals``).
    """
    allowed = tuple(t for t in torch.serialization.get_safe_globals() if isinstance(t, type))
    stack: list[tuple[str, Any]] = [(where, obj)]
    seen: set[int] = set()
    while stack:
        path, value = stack.pop()
        kind = type(value)
        # any tensor passes: refusing a legitimate subclass (DTensor) would block saves
        if kind in _SAFE_LEAVES or isinstance(value, torch.Tensor):
            continue
        if kind in _SAFE_CONTAINERS:
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, dict):
                items = list(value.items())
                for key, _ in items:
                    if type(key) not in _SAFE_LEAVES:
                        return f"{path} (a key)", key
                stack.extend((path + _key_repr(k), v) for k, v in reversed(items))
            else:
                stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
            continue
        if allowed and isinstance(value, allowed):
            continue
        return path, value
    return None


def check_weights_only_safe(obj: Any, where: str = "checkpoint") -> None:
    """Raise :class:`UnsafeValueError` when ``obj`` would not load with ``weights_only=True``.

    Run before a save, so that an unloadable checkpoint is caught when it is written,
    with the exact entry named, not months later when someone tries to resume.
    """
    found = find_unsafe_value(obj, where)
    if found is None:
        return
    path, value = found
    kind = type(value)
    raise UnsafeValueError(
        f"{path} is a {kind.__module__}.{kind.__qualname__} ({_short_repr(value)}), which "
        "torch.load(weights_only=True) refuses. Store tensors and plain data (dict, list, "
        "tuple, str, int, float, bool, None) there: convert it, e.g. with "
        "ember.trainer.checkpoint.to_plain(), or return plain data from the state_dict() "
        "that produced it."
    )


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _temp_path(target: Path) -> Path:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    token = secrets.token_hex(8)
    return target.with_name(f".{target.name}.{os.getpid()}@{host}.{token}{TEMP_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    # Without this the rename may be lost on power failure even though the data is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms (Windows) that cannot open a folder for fsync
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _describe_save_failure(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        cause = "the disk is full (ENOSPC)"
        fix = "free space on that disk or save elsewhere"
    elif isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        cause = "the file grew past the size limit (EFBIG)"
        fix = "raise the file-size limit (ulimit -f) or save elsewhere"
    else:
        cause = f"{type(exc).__name__}: {exc}"
        fix = "fix the cause above and save again"
    return (
        f"could not write checkpoint {path}: {cause}. The previous file at that path, if "
        f"any, is intact and no partial file was left behind; {fix}."
    )


class _RecordingWriter:
    """A file wrapper that remembers the first OS error of a write (ENOSPC, EFBIG)."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self._file.flush()


def save_checkpoint_atomic(
    obj: Mapping[str, Any], path: str | os.PathLike[str], *, check: bool = True
) -> Path:
    """Write ``obj`` to ``path`` so that readers see either the old file or the new one.

    The bytes go to a temporary file next to ``path`` (same file system, so the rename is
    atomic), are flushed and fsynced, then ``os.replace`` puts the file in place and the
    folder is fsynced. On any failure the temporary file is removed, the previous file is
    left untouched and :class:`CheckpointSaveError` is raised (``KeyboardInterrupt`` and
    ``SystemExit`` pass through unchanged after the cleanup).

    :param obj: the checkpoint dictionary.
    :param path: the target file; missing parent folders are created.
    :param check: first verify that everything in ``obj`` will load with
        ``weights_only=True`` (:func:`check_weights_only_safe`).
    :returns: the path written.
    """
    target = Path(path)
    if check:
        check_weights_only_safe(obj)
    if target.is_dir():
        raise CheckpointSaveError(
            f"cannot save a checkpoint to {target}: it is a folder; give a file path such "
            f"as {target / 'last.ckpt'}"
        )
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointSaveError(_describe_save_failure(target, exc)) from exc
    tmp = _temp_path(target)
    created = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        created = True
        with open(fd, "wb") as f:
            sink = _RecordingWriter(f)
            try:
                torch.save(obj, sink)
            except Exception as exc:
                # torch reports a failed write as its own RuntimeError; surface the OSError
                raise (sink.error or exc) from exc
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        created = False
        _fsync_dir(folder)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, Exception):
            raise CheckpointSaveError(_describe_save_failure(target, exc)) from exc
        raise
    return target


def link_checkpoint_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Make ``target`` a second name of the finished checkpoint ``source``, atomically.

    A hard link costs no copy and survives the later deletion of ``source``; where the file
    system has no hard links the file is copied and fsynced instead. Either way the new
    name appears through ``os.replace``, so ``target`` is never half written.
    """
    source, target = Path(source), Path(target)
    if target.exists() and os.path.samefile(source, target):
        return target
    if source.is_dir():
        return _link_folder(source, target)
    tmp = _temp_path(target)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception):
            raise CheckpointSaveError(_describe_save_failure(target, exc)) from exc
        raise
    return target


def _link_folder(source: Path, target: Path) -> Path:
    """:func:`link_checkpoint_atomic` for a checkpoint that is a folder (a sharded one):
    its files hard-linked (or copied) into a temporary folder renamed into place."""
    tmp = _temp_path(target)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    old = None
    if target.exists():
        old = _temp_path(target)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        remove_checkpoint(old)
    _fsync_dir(target.parent)
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def remove_checkpoint(path: str | os.PathLike[str]) -> None:
    """Delete a checkpoint: a file, or the folder of a sharded one."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left in ``folder`` by saves that were killed mid-write.

    A temporary file is stale when the process that made it (same host) is gone, or when it
    is older than a day (another host's). Returns the files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    removed = []
    now = time.time()
    for entry in folder.iterdir():
        match = _TEMP_RE.match(entry.name)
        if match is None:
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        mine = match["host"] == host
        if (mine and not _pid_alive(int(match["pid"]))) or age > _STALE_AFTER_S:
            with contextlib.suppress(FileNotFoundError):
                remove_checkpoint(entry)  # a file, or a sharded checkpoint's folder
                removed.append(entry)
    return removed


# --------------------------------------------------------------------------- loading

_ZIP_MAGIC = b"PK\x03\x04"
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _check_zip(path: Path, size: int, verify: bool) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TruncatedCheckpointError(
            f"checkpoint {path} is truncated or torn: {size} bytes, and the archive's "
            "end record is missing. The write that produced it did not finish (a crash, a "
            "full disk, an interrupted copy). Use an earlier checkpoint; files saved by "
            "ember are written atomically and never end up like this."
        ) from exc
    with archive:
        members = archive.infolist()
        if not verify or all(m.CRC == 0 for m in members):
            return  # written without checksums (torch's set_crc32_options(False))
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            bad = f"{exc}"
        if bad is not None:
            raise TruncatedCheckpointError(
                f"checkpoint {path} is truncated or torn: {size} bytes, and its entry "
                f"{bad!r} fails the checksum recorded when it was written. The file was "
                "damaged after saving (disk or copy error); use an earlier checkpoint."
            )


def _raise_for_unpickling(path: Path, exc: Exception) -> None:
    text = str(exc)
    found = _GLOBAL_RE.search(text)
    if found or "Unsupported" in text or "unsupported" in text:
        what = f"import {found[1]}" if found else "run an operation"
        raise UnsafeCheckpointError(
            f"refused to load {path}: the file asks to {what}, which is not tensors or "
            "plain data. Nothing from the file was executed. ember checkpoints never need "
            "this, so the file was not written by ember or was altered. Only if you trust "
            "its source and know what it runs, read it with torch.load(path, "
            "weights_only=False)."
        ) from exc
    if "truncated" in text or isinstance(exc.__context__, EOFError):
        raise TruncatedCheckpointError(
            f"checkpoint {path} is truncated or torn: {path.stat().st_size} bytes; its "
            "data ends early. Use an earlier checkpoint."
        ) from exc
    first = text.splitlines()[0] if text else type(exc).__name__
    raise NotACheckpointError(f"{path} is not a readable checkpoint: {first}") from exc


def _looks_like_state_dict(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def check_format(obj: Any, path: str | os.PathLike[str] = "<checkpoint>") -> dict[str, Any]:
    """Check that a loaded object is an ember checkpoint this version can read; return it."""
    if not isinstance(obj, dict):
        raise NotACheckpointError(
            f"{path} holds a {type(obj).__name__}, not an ember checkpoint (a dictionary "
            "with a 'format_version' entry)."
        )
    if "format_version" not in obj:
        if "pytorch-lightning_version" in obj:
            hint = (
                f"it is a PyTorch Lightning checkpoint (Lightning "
                f"{obj['pytorch-lightning_version']}). ember does not resume from it; its "
                "weights are under 'state_dict': load them with "
                "load_module_state(module, checkpoint['state_dict'])."
            )
        elif _looks_like_state_dict(obj):
            hint = (
                "it looks like a plain state dict (torch.save(model.state_dict())): load "
                "it with load_module_state(module, torch.load(path, weights_only=True))."
            )
        else:
            keys = ", ".join(map(repr, list(obj)[:_LIST_LIMIT]))
            hint = f"it has no 'format_version' entry (keys: {keys or 'none'})."
        raise NotACheckpointError(f"{path} is not an ember checkpoint: {hint}")
    version = obj["format_version"]
    if type(version) is not int or version < 1:
        raise NotACheckpointError(
            f"{path} is not an ember checkpoint: 'format_version' is {version!r}, not a "
            "positive integer."
        )
    if version > FORMAT_VERSION:
        written_by = obj.get("ember_version", "an unknown version")
        raise NewerCheckpointVersionError(
            f"{path} uses checkpoint format {version} (written by ember {written_by}); this "
            f"ember {ember_version()} reads checkpoint format {FORMAT_VERSION} and older. "
            "Upgrade ember (pip install --upgrade ember) to load it."
        )
    return obj


def load_checkpoint_safe(
    path: str | os.PathLike[str],
    map_location: Any = "cpu",
    *,
    verify: bool = True,
) -> dict[str, Any]:
    """Load an ember checkpoint without ever running code from the file.

    :param path: the checkpoint file.
    :param map_location: where tensors go, as for ``torch.load`` (CPU by default, so a GPU
        checkpoint loads on any machine).
    :param verify: check the archive's CRC-32 checksums first (one extra read of the file,
        usually from the page cache); catches files damaged after saving, which
        ``torch.load`` would otherwise load with silently wrong tensors.
    :raises CheckpointNotFoundError: no such file.
    :raises TruncatedCheckpointError: the file ends early or fails its checksums.
    :raises NotACheckpointError: random bytes, another format, or not an ember checkpoint.
    :raises UnsafeCheckpointError: the pickle imports or calls something (refused unrun).
    :raises NewerCheckpointVersionError: the format is newer than this ember.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(_not_found_message(path))
    if path.is_dir():
        raise CheckpointNotFoundError(
            f"{path} is a folder, not a checkpoint file; pass a file such as {path / 'last.ckpt'}"
        )
    size = path.stat().st_size
    if size == 0:
        raise TruncatedCheckpointError(
            f"checkpoint {path} is truncated or torn: 0 bytes. The write that produced it "
            "did not finish; use an earlier checkpoint."
        )
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if head == _ZIP_MAGIC:
        _check_zip(path, size, verify)
    elif len(head) < len(_ZIP_MAGIC) and _ZIP_MAGIC.startswith(head):
        raise TruncatedCheckpointError(
            f"checkpoint {path} is truncated or torn: {size} bytes, the start of an archive "
            "and nothing more. Use an earlier checkpoint."
        )
    elif head[:1] != b"\x80":  # a pickle (old torch format) starts with its PROTO opcode
        raise NotACheckpointError(
            f"{path} is not a checkpoint: {size} bytes that do not start like a PyTorch "
            f"file (first bytes {head!r})."
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        _raise_for_unpickling(path, exc)
    except EOFError as exc:
        raise TruncatedCheckpointError(
            f"checkpoint {path} is truncated or torn: {size} bytes; its data ends early."
        ) from exc
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotACheckpointError(
            f"{path} is not a readable checkpoint ({size} bytes): {first}"
        ) from exc
    return check_format(obj, path)


def _not_found_message(path: Path) -> str:
    msg = f"checkpoint {path} does not exist"
    if path.parent.is_dir():
        nearby = sorted(p.name for p in path.parent.glob("*.ckpt"))
        if nearby:
            shown = ", ".join(nearby[:_LIST_LIMIT])
            more = f" and {len(nearby) - _LIST_LIMIT} more" if len(nearby) > _LIST_LIMIT else ""
            msg += f"; {path.parent} holds: {shown}{more}"
        else:
            msg += f"; {path.parent} holds no .ckpt files"
    else:
        msg += f" (no folder {path.parent})"
    return msg


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f", ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"


def load_module_state(
    module: torch.nn.Module, state_dict: Mapping[str, Any], strict: bool = True
) -> Any:
    """Load ``state_dict`` into ``module``, or say exactly why it does not fit.

    With ``strict=True``, missing and unexpected keys are an error; with ``strict=False``
    the matching keys load and the rest are returned (torch's ``IncompatibleKeys``).
    A shape mismatch is an error either way: a tensor of the wrong shape is never loaded.

    :raises StateMismatchError: lists the missing keys, the unexpected keys and each shape
        mismatch as ``name: checkpoint [a, b], model [c, d]``.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = []
    for key, theirs in state_dict.items():
        ours = expected.get(key)
        if (
            isinstance(theirs, torch.Tensor)
            and isinstance(ours, torch.Tensor)
            and not isinstance(ours, torch.nn.parameter.UninitializedTensorMixin)
            and theirs.shape != ours.shape
        ):
            mismatched.append(f"{key}: checkpoint {list(theirs.shape)}, model {list(ours.shape)}")
    if mismatched or (strict and (missing or unexpected)):
        msg = (
            f"the checkpoint's state does not fit {type(module).__name__}: it was saved from "
            "a different model, or from this model with other hyperparameters."
        )
        if strict and missing:
            msg += _listing("missing from the checkpoint", missing)
        if strict and unexpected:
            msg += _listing("unexpected in the checkpoint", unexpected)
        if mismatched:
            msg += _listing("shape mismatch", mismatched)
        if strict and (missing or unexpected) and not mismatched:
            msg += "\nPass strict=False to load only the entries that match."
        elif mismatched:
            msg += (
                "\nCreate the model with the hyperparameters it was trained with (a "
                "mismatched tensor is never loaded, even with strict=False)."
            )
        raise StateMismatchError(msg)
    return module.load_state_dict(state_dict, strict=strict)


def instantiate_from_checkpoint(
    cls: type[torch.nn.Module],
    path: str | os.PathLike[str],
    map_location: Any = "cpu",
    strict: bool | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """Build ``cls`` from a checkpoint's hyperparameters (``overrides`` win) and load its weights.

    The building block of ``EmberModule.load_from_checkpoint``. The object is built with
    ``cls(**hyper_parameters)``; nothing named in the file is imported. A module that
    overrides ``on_load_checkpoint`` sees the checkpoint before its weights load.

    ``strict=None`` takes the built module's ``strict_loading`` (``True`` when it has none);
    loading without ``strict`` warns about the keys it left out.

    :raises CheckpointError: the hyperparameters do not fit ``cls``'s constructor (the
        message lists them and says what to pass), or ``strict`` contradicts the module's
        ``strict_loading``.
    """
    checkpoint = load_checkpoint_safe(path, map_location=map_location)
    if "state_dict" not in checkpoint:
        raise NotACheckpointError(f"{path} holds no model weights (no 'state_dict' entry)")
    module = build_from_hyperparameters(cls, checkpoint, path, "hyper_parameters", overrides)
    hook = getattr(module, "on_load_checkpoint", None)
    if callable(hook):
        hook(checkpoint)
    chosen = getattr(module, "_strict_loading", None)
    if chosen is not None and strict is not None and strict != chosen:
        raise CheckpointError(
            f"{cls.__name__}.load_from_checkpoint(..., strict={strict!r}) contradicts "
            f"{cls.__name__}.strict_loading={chosen!r}: pass the same value, or leave strict "
            "out to use strict_loading"
        )
    strict = getattr(module, "strict_loading", True) if strict is None else strict
    keys = load_module_state(module, checkpoint["state_dict"], strict=strict)
    if not strict:
        warn_incompatible_keys(keys, path)
    return module


def warn_incompatible_keys(keys: Any, path: str | os.PathLike[str]) -> None:
    """Warn about the weights a non-strict load left out (torch's ``IncompatibleKeys``)."""
    if keys.missing_keys:
        warnings.warn(
            f"{os.fspath(path)}: these weights of the model are not in the checkpoint and "
            f"keep their current values: {', '.join(keys.missing_keys)}",
            UserWarning,
            stacklevel=3,
        )
    if keys.unexpected_keys:
        warnings.warn(
            f"{os.fspath(path)}: these weights of the checkpoint are not in the model and "
            f"were not loaded: {', '.join(keys.unexpected_keys)}",
            UserWarning,
            stacklevel=3,
        )


def build_from_hyperparameters(
    cls: type,
    checkpoint: Mapping[str, Any],
    path: str | os.PathLike[str],
    key: str,
    overrides: Mapping[str, Any],
) -> Any:
    """``cls(**checkpoint[key], **overrides)``, or a :class:`CheckpointError` that says
    which hyperparameters the file holds and what the constructor wanted."""
    saved = dict(checkpoint.get(key) or {})
    hparams = {**saved, **overrides}
    name = cls.__name__
    # values to_plain could only describe: the constructor gets a dict, not the object
    described = sorted(
        k
        for k, v in saved.items()
        if k not in overrides and isinstance(v, dict) and "class_path" in v
    )
    hint = (
        f" {', '.join(described)} {'was' if len(described) == 1 else 'were'} saved as a "
        "description ({'class_path': ...}), not as the object: pass "
        + ", ".join(f"{k}=..." for k in described)
        + " again."
        if described
        else ""
    )
    try:
        inspect.signature(cls).bind(**hparams)
    except TypeError as exc:
        listed = ", ".join(f"{k}={v!r}" for k, v in saved.items()) or (
            f"none ({name}.__init__ does not call self.save_hyperparameters())"
        )
        raise CheckpointError(
            f"cannot build {name} from {os.fspath(path)}: {exc}. The checkpoint's "
            f"hyperparameters: {listed}. Pass what is missing or different as keyword "
            f"arguments: {name}.load_from_checkpoint(path, name=value).{hint}"
        ) from exc
    except ValueError:  # no signature to check (a builtin): let the call decide
        pass
    try:
        return cls(**hparams)
    except Exception as exc:
        if not described:
            raise
        raise CheckpointError(
            f"building {name} from {os.fspath(path)} raised {type(exc).__name__}: {exc}.{hint}"
        ) from exc
