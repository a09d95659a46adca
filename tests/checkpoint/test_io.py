"""Atomic saves and safe loads, against real files, real disks and real process kills."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import random
import resource
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch
from ember.trainer.checkpoint import (
    FORMAT_VERSION,
    CheckpointNotFoundError,
    CheckpointSaveError,
    NewerCheckpointVersionError,
    NotACheckpointError,
    StateMismatchError,
    TruncatedCheckpointError,
    UnsafeCheckpointError,
    UnsafeValueError,
    checkpoint_header,
    instantiate_from_checkpoint,
    link_checkpoint_atomic,
    load_checkpoint_safe,
    load_module_state,
    remove_stale_temp_files,
    save_checkpoint_atomic,
)
from ember.trainer.checkpoint.io import TEMP_SUFFIX


def _ckpt(fill: float = 1.0, numel: int = 1000) -> dict:
    return {**checkpoint_header(), "state_dict": {"w": torch.full((numel,), fill)}}


def _temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX)]


# ------------------------------------------------------------------------- saving


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.ckpt"
    save_checkpoint_atomic(_ckpt(3.0), path)
    loaded = load_checkpoint_safe(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert torch.equal(loaded["state_dict"]["w"], torch.full((1000,), 3.0))
    assert os.listdir(path.parent) == ["a.ckpt"]


def test_saved_file_gets_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = save_checkpoint_atomic(_ckpt(), tmp_path / "a.ckpt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


class _ExplodesWhenPickled:
    def __reduce__(self):
        raise RuntimeError("serialisation failed halfway")


def test_failed_serialisation_leaves_previous_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "a.ckpt"
    save_checkpoint_atomic(_ckpt(1.0), path)
    before = path.read_bytes()
    # a big tensor first, so the failure comes after bytes were written
    bad = {"big": torch.zeros(1_000_000), "then": _ExplodesWhenPickled()}
    with pytest.raises(CheckpointSaveError, match="serialisation failed halfway") as info:
        save_checkpoint_atomic(bad, path, check=False)
    assert "previous file at that path, if any, is intact" in str(info.value)
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_unsafe_value_is_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.ckpt"
    with pytest.raises(UnsafeValueError, match=r"checkpoint\['callbacks'\]\['cb'\]\['when'\]"):
        save_checkpoint_atomic(
            {**checkpoint_header(), "callbacks": {"cb": {"when": Path("x")}}}, path
        )
    assert not path.exists()


def test_save_to_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointSaveError, match="it is a folder"):
        save_checkpoint_atomic(_ckpt(), tmp_path)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A real 256 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_full_disk_leaves_previous_file_intact(tiny_disk: Path) -> None:
    path = tiny_disk / "last.ckpt"
    save_checkpoint_atomic(_ckpt(1.0, numel=10_000), path)  # ~40 KB
    before = path.read_bytes()
    with pytest.raises(CheckpointSaveError, match=r"disk is full \(ENOSPC\)"):
        save_checkpoint_atomic(_ckpt(2.0, numel=1_000_000), path)  # ~4 MB
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint_safe(path)["state_dict"]["w"], torch.full((10_000,), 1.0))
    assert _temp_files(tiny_disk) == []


def _save_under_file_size_limit(payload: dict, path: str, queue: multiprocessing.Queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
    try:
        save_checkpoint_atomic(payload, path)
        queue.put("saved")
    except CheckpointSaveError as exc:
        queue.put(str(exc))


# Forked children only serialise tensors made by the parent: a fork after torch ran a
# multi-threaded (OpenMP) op must not run such an op itself, or it can deadlock.
_FORK = multiprocessing.get_context("fork")


def test_write_failing_halfway_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    save_checkpoint_atomic(_ckpt(1.0), path)
    before = path.read_bytes()
    queue = _FORK.Queue()
    payload = _ckpt(2.0, numel=1_000_000)
    child = _FORK.Process(target=_save_under_file_size_limit, args=(payload, str(path), queue))
    child.start()
    message = queue.get(timeout=60)
    child.join(60)
    assert "EFBIG" in message
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def _save_forever(tensors: list[torch.Tensor], path: str) -> None:
    for i in range(1_000_000):
        k = i % len(tensors)
        save_checkpoint_atomic({**checkpoint_header(), "k": k, "w": tensors[k]}, path)


def test_sigkill_during_saves_never_leaves_a_torn_checkpoint(tmp_path: Path) -> None:
    """Kill a process that saves in a loop at random moments: the file always loads and is
    self-consistent; the temporary files the kills leave behind are cleaned up."""
    path = tmp_path / "last.ckpt"
    tensors = [torch.full((300_000,), float(k)) for k in range(16)]
    rng = random.Random(1234)
    seen = set()
    interrupted_writes = 0
    for _ in range(10):
        child = _FORK.Process(target=_save_forever, args=(tensors, str(path)))
        child.start()
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        loaded = load_checkpoint_safe(path)
        assert torch.equal(loaded["w"], tensors[loaded["k"]])
        seen.add(loaded["k"])
        interrupted_writes += len(remove_stale_temp_files(tmp_path))
        assert _temp_files(tmp_path) == []
    # the kills landed at different moments, some in the middle of a write
    assert len(seen) > 1
    assert interrupted_writes >= 1


def test_stale_temp_files_of_live_processes_are_kept(tmp_path: Path) -> None:
    live = tmp_path / f".last.ckpt.{os.getpid()}@{_host()}.{'0' * 16}{TEMP_SUFFIX}"
    live.write_bytes(b"in flight")
    dead_pid = _dead_pid()
    dead = tmp_path / f".last.ckpt.{dead_pid}@{_host()}.{'1' * 16}{TEMP_SUFFIX}"
    dead.write_bytes(b"left by a kill")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert live.exists() and unrelated.exists()


def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_link_checkpoint_atomic(tmp_path: Path) -> None:
    source = save_checkpoint_atomic(_ckpt(5.0), tmp_path / "epoch=1.ckpt")
    last = tmp_path / "last.ckpt"
    save_checkpoint_atomic(_ckpt(4.0), last)
    link_checkpoint_atomic(source, last)
    assert os.path.samefile(source, last)
    source.unlink()  # rotating the top-k file away keeps last.ckpt whole
    assert torch.equal(load_checkpoint_safe(last)["state_dict"]["w"], torch.full((1000,), 5.0))
    assert _temp_files(tmp_path) == []


# ------------------------------------------------------------------------- loading


def test_missing_file_lists_what_is_there(tmp_path: Path) -> None:
    save_checkpoint_atomic(_ckpt(), tmp_path / "epoch=0-step=10.ckpt")
    with pytest.raises(CheckpointNotFoundError, match=r"holds: epoch=0-step=10\.ckpt"):
        load_checkpoint_safe(tmp_path / "epoch=0-step=11.ckpt")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        load_checkpoint_safe(tmp_path)


@pytest.mark.parametrize("keep", [0, 1, 3, 100, 0.5, -1])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    good = save_checkpoint_atomic(_ckpt(numel=50_000), tmp_path / "good.ckpt").read_bytes()
    size = int(len(good) * keep) if isinstance(keep, float) else keep % len(good)
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(good[:size])
    with pytest.raises(TruncatedCheckpointError, match=f"truncated or torn: {size} bytes"):
        load_checkpoint_safe(torn)


def test_bit_flip_in_tensor_data_is_caught_by_checksum(tmp_path: Path) -> None:
    data = bytearray(save_checkpoint_atomic(_ckpt(numel=50_000), tmp_path / "a.ckpt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(TruncatedCheckpointError, match="fails the checksum"):
        load_checkpoint_safe(damaged)


def test_random_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(NotACheckpointError, match="do not start like a PyTorch file"):
        load_checkpoint_safe(junk)


class _Malicious:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_pickle_carrying_code_is_refused_and_nothing_runs(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.ckpt"
    payload = {**checkpoint_header(), "state_dict": {}, "x": _Malicious(marker)}
    if container == "torch_zip":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"asks to import posix\.system") as info:
        load_checkpoint_safe(evil)
    assert "Nothing from the file was executed" in str(info.value)
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    if container == "torch_zip":
        torch.load(evil, weights_only=False)
    else:
        pickle.loads(evil.read_bytes())
    assert marker.exists()


def test_newer_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.ckpt"
    torch.save({"format_version": FORMAT_VERSION + 1, "ember_version": "9.0.0"}, path)
    with pytest.raises(NewerCheckpointVersionError) as info:
        load_checkpoint_safe(path)
    msg = str(info.value)
    assert f"format {FORMAT_VERSION + 1} (written by ember 9.0.0)" in msg
    assert f"reads checkpoint format {FORMAT_VERSION} and older" in msg
    assert "Upgrade ember" in msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"w": torch.ones(2)}, "looks like a plain state dict"),
        ({"pytorch-lightning_version": "2.6.0", "state_dict": {}}, "PyTorch Lightning checkpoint"),
        ({"a": 1}, "no 'format_version' entry"),
        ([1, 2], "holds a list"),
        ({"format_version": "1"}, "not a positive integer"),
    ],
)
def test_foreign_files(tmp_path: Path, content: object, expected: str) -> None:
    path = tmp_path / "foreign.ckpt"
    torch.save(content, path)
    with pytest.raises(NotACheckpointError, match=expected):
        load_checkpoint_safe(path)


def test_zip_that_is_not_torch(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "a.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(NotACheckpointError, match="not a readable checkpoint"):
        load_checkpoint_safe(path)


def test_map_location(tmp_path: Path) -> None:
    path = save_checkpoint_atomic(_ckpt(), tmp_path / "a.ckpt")
    assert load_checkpoint_safe(path, map_location="meta")["state_dict"]["w"].is_meta


# ------------------------------------------------------------------------- module state


class _Net(torch.nn.Module):
    def __init__(self, hidden: int = 4, extra: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, hidden)
        self.head = torch.nn.Linear(hidden, 1)
        if extra:
            self.extra = torch.nn.Linear(1, 1)


def test_load_module_state_reports_every_difference() -> None:
    other = {k: v for k, v in _Net(hidden=8).state_dict().items() if not k.startswith("head.b")}
    other["surplus.weight"] = torch.ones(1)
    with pytest.raises(StateMismatchError) as info:
        load_module_state(_Net(hidden=4, extra=True), other)
    msg = str(info.value)
    assert "does not fit _Net" in msg
    assert "missing from the checkpoint (3): head.bias, extra.weight, extra.bias" in msg
    assert "unexpected in the checkpoint (1): surplus.weight" in msg
    assert "shape mismatch (3): layer.weight: checkpoint [8, 3], model [4, 3]" in msg
    assert "never loaded, even with strict=False" in msg


def test_load_module_state_non_strict_loads_the_matching_part() -> None:
    source = _Net()
    target = _Net(extra=True)
    result = load_module_state(target, source.state_dict(), strict=False)
    assert result.missing_keys == ["extra.weight", "extra.bias"]
    assert torch.equal(target.layer.weight, source.layer.weight)
    with pytest.raises(StateMismatchError, match=r"Pass strict=False"):
        load_module_state(_Net(extra=True), source.state_dict())


def test_instantiate_from_checkpoint(tmp_path: Path) -> None:
    trained = _Net(hidden=6)
    path = tmp_path / "m.ckpt"
    save_checkpoint_atomic(
        {
            **checkpoint_header(),
            "state_dict": trained.state_dict(),
            "hyper_parameters": {"hidden": 6},
        },
        path,
    )
    rebuilt = instantiate_from_checkpoint(_Net, path)
    assert torch.equal(rebuilt.layer.weight, trained.layer.weight)
    with pytest.raises(StateMismatchError, match="shape mismatch"):
        instantiate_from_checkpoint(_Net, path, hidden=5)
    with contextlib.suppress(StateMismatchError):
        instantiate_from_checkpoint(_Net, path, extra=True, strict=False)


def test_atomic_save_fsyncs_the_file_then_renames_then_fsyncs_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the file's fsync before the rename a power cut can leave the new name
    pointing at empty data; without the folder's fsync after it, the rename itself."""
    calls: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        calls.append(("fsync", ("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino)))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(("replace", (os.stat(src).st_ino, Path(dst))))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "sub" / "last.ckpt"
    save_checkpoint_atomic({"state_dict": {"w": torch.ones(3)}}, target)
    monkeypatch.undo()

    file_ino, folder_ino = target.stat().st_ino, target.parent.stat().st_ino
    assert calls == [
        ("fsync", ("file", file_ino)),
        ("replace", (file_ino, target)),
        ("fsync", ("dir", folder_ino)),
    ]
