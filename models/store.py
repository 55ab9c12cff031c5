"""The checkpoint store: checkpoints/<name>/<version>/, versions published atomically, and their aliases."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from models.aliases import (
    ALIASES_FILE,
    LATEST,
    STABLE,
    AliasChange,
    AliasError,
    Aliases,
    change,
    locked,
    read_aliases,
    write_aliases,
)
from models.checkpoint import Checkpoint, CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

# Lower-case letters, digits and dashes: a name can never climb out of the store.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,17}$")  # ASCII digits only (str.isdigit takes "²"), no leading 0
STAGING_PREFIX = ".tmp-"


class InvalidNameError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"invalid model name {name!r}: use lower-case letters, digits and dashes")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(name)
    return name


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_PATTERN.fullmatch(p.name))

    def versions(self, name: str) -> list[int]:
        """Published versions, oldest first; staging folders (.tmp-*) and other hidden entries are invisible."""
        folder = self.root / check_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and VERSION_PATTERN.fullmatch(p.name))

    def problems(self) -> dict[str, str]:
        """Visible entries that are neither a model nor a version ("name/entry" -> why), to report, not load."""
        found: dict[str, str] = {}
        if not self.root.is_dir():
            return found
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir() or not NAME_PATTERN.fullmatch(entry.name):
                found[entry.name] = "not a model folder (lower-case letters, digits and dashes)"
                continue
            for version in sorted(entry.iterdir()):
                hidden, valid = version.name.startswith("."), VERSION_PATTERN.fullmatch(version.name)
                if not hidden and not (valid and version.is_dir()) and version.name != ALIASES_FILE:
                    found[f"{entry.name}/{version.name}"] = "not a version folder (a number from 1, ASCII digits)"
        return found

    def path(self, name: str, version: int) -> Path:
        return self.root / check_name(name) / str(int(version))

    def load(self, name: str, version: int, device: str | torch.device = "cpu") -> Checkpoint:
        """One version, read from inside the store only; its model.json must name the folder's model."""
        checkpoint = load_checkpoint(self.path(name, version), device, within=self.root)
        if checkpoint.name != name:
            raise CheckpointError(checkpoint.path / "model.json", f"names model {checkpoint.name!r}, "
                                  f"but lies in the folder of {name!r}")  # fmt: skip
        return checkpoint

    def load_latest(self, name: str, device: str | torch.device = "cpu") -> Checkpoint:
        """The highest version that validates; broken ones are skipped with a logged reason."""
        for version in reversed(self.versions(name)):
            try:
                return self.load(name, version, device)
            except CheckpointError as e:
                log.warning("skipping %s version %d: %s", name, version, e)
        raise CheckpointError(self.root / name, "no valid version")

    def aliases(self, name: str) -> Aliases:
        """The model's alias file (AliasError if malformed); without one, `stable` means `latest`."""
        return read_aliases(self.root / check_name(name))

    def stable(self, name: str) -> int | None:
        """The version unpinned requests get: the `stable` alias, else the latest; None for no version."""
        return self.aliases(name).stable or max(self.versions(name), default=None)

    def promote(self, name: str, version: int, by: str) -> AliasChange:
        """Move `stable` to `version`, which must load whole; recorded in the alias file's history."""
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise AliasError(f"no model {name!r} in {self.root}")
        with locked(folder):
            if version not in self.versions(name):
                known = ", ".join(map(str, self.versions(name))) or "none"
                raise AliasError(f"{name} has no version {version} (its versions: {known})")
            self.load(name, version)  # CheckpointError: a broken version is never promoted
            aliases = read_aliases(folder)
            updated = change(aliases, version, aliases.stable, by)
            write_aliases(folder, updated)
        log.info("%s: stable is now version %d (was %s)", name, version, aliases.stable or LATEST)
        return updated.history[-1]

    def rollback(self, name: str, by: str) -> AliasChange:
        """Move `stable` back to the version it held before its last change."""
        aliases = self.aliases(name)
        if not aliases.history or aliases.history[-1].previous is None:
            raise AliasError(f"{name}: no earlier {STABLE} version to roll back to")
        return self.promote(name, aliases.history[-1].previous, f"{by} (rollback)")

    def publish(self, name: str, write: Callable[[Path], None], promote: bool = False) -> int:
        """Let `write` fill a staging folder, then rename it to the next free version.

        A reader sees a version whole or not at all; a crash leaves only a hidden staging
        folder; two publishers racing for a number both succeed with different numbers,
        because renaming onto an existing, non-empty version fails. Publishing is not promoting:
        unless `promote`, `stable` stays where it was (in a store without aliases it is first
        pinned to the version that was latest).
        """
        folder = self.root / check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        if not promote and not (folder / ALIASES_FILE).exists() and self.versions(name):
            with contextlib.suppress(CheckpointError):  # no valid version: nothing to keep stable
                self.promote(name, self.load_latest(name).version, "ae-train: kept stable while publishing")
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
        try:
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from other users
            write(staging)
            for file in staging.iterdir():
                file.chmod(0o644)  # readable by a service running as another user
                _fsync(file)
            while True:
                version = max(self.versions(name), default=0) + 1
                try:
                    staging.rename(folder / str(version))
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        continue  # another run took this number first
                    raise
                _fsync(folder)
                if promote:
                    self.promote(name, version, "ae-train --promote")
                return version
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
