"""A model's aliases: `stable`, the version unpinned requests get, kept in the store with its history.

`checkpoints/<name>/aliases.json` holds `{"stable": 3, "history": [{"alias", "version", "previous",
"at", "by"}, ...]}`. It is replaced whole (written aside, then renamed), under a lock, so a reader
sees the old file or the new one and two promotions never lose one another. `latest` is not
stored: it is the highest published version. A model without the file has no `stable` of its own,
and `stable` then means `latest` (the stores made before aliases keep working).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ALIASES_FILE = "aliases.json"
LOCK_FILE = ".aliases.lock"
STABLE, LATEST = "stable", "latest"
ALIAS_NAMES = (STABLE, LATEST)


class AliasError(ValueError):
    """An alias file that cannot be read, or an alias change that cannot be made; says which and why."""


@dataclass(frozen=True)
class AliasChange:
    alias: str
    version: int
    previous: int | None  # None: the alias meant `latest` before
    at: str  # ISO 8601, UTC
    by: str  # what made the change (a command, a user)


@dataclass(frozen=True)
class Aliases:
    stable: int | None = None  # None: no stable of its own, `stable` means `latest`
    history: tuple[AliasChange, ...] = field(default=())


def _check_version(value: Any, where: str) -> int:
    if type(value) is not int or value < 1:
        raise AliasError(f"{where}: {value!r} is not a version number")
    return value


def read_aliases(folder: Path) -> Aliases:
    """The aliases of the model in `folder`; no file is no aliases, a malformed one an AliasError."""
    path = folder / ALIASES_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Aliases()
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise AliasError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("history", []), list):
        raise AliasError(f"{path}: expected an object with 'stable' and a 'history' list")
    stable = None if data.get(STABLE) is None else _check_version(data[STABLE], f"{path}: 'stable'")
    history = []
    for index, entry in enumerate(data.get("history", [])):
        try:
            change = AliasChange(**entry)
        except TypeError:
            raise AliasError(f"{path}: history[{index}] is not an alias change") from None
        _check_version(change.version, f"{path}: history[{index}].version")
        if change.previous is not None:
            _check_version(change.previous, f"{path}: history[{index}].previous")
        history.append(change)
    return Aliases(stable, tuple(history))


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One alias change at a time per model, across processes (an advisory lock on a hidden file)."""
    with open(folder / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_aliases(folder: Path, aliases: Aliases) -> None:
    """Replace the alias file whole: written aside, flushed, renamed over the old one."""
    content = {STABLE: aliases.stable, "history": [asdict(change) for change in aliases.history]}
    handle, name = tempfile.mkstemp(prefix=".aliases-", dir=folder)
    staging = Path(name)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(content, indent=2) + "\n")
            file.flush()
            os.fsync(file.fileno())
        staging.chmod(0o644)  # readable by a service running as another user
        staging.replace(folder / ALIASES_FILE)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def change(aliases: Aliases, version: int, previous: int | None, by: str) -> Aliases:
    """`aliases` with `stable` moved to `version`, the move recorded."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Aliases(version, (*aliases.history, AliasChange(STABLE, version, previous, now, by)))
