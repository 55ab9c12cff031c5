"""Per-epoch training state, so that a killed run continues where it stopped.

The state is our own file, read back with `weights_only=True`: tensors and plain
containers only, never arbitrary objects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write aside then rename, so a kill mid-write keeps the previous epoch's state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def _read(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def load_state(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of this very run (same config, recipe, seed, data), else None."""
    if not path.is_file():
        return None
    try:
        state = _read(path)
    except Exception as e:  # a state we cannot read is only a lost head start
        log.warning("ignoring unreadable training state %s (%s); starting from epoch 1", path, e)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("training state %s belongs to another run; starting from epoch 1", path)
        return None
    return state


def saved_epochs(path: Path, fingerprint: dict[str, Any]) -> int:
    """How many epochs of this very run the state at `path` holds: what a run stopped now resumes after.

    Read back rather than counted along, since Ctrl-C may come between writing a state and counting it.
    """
    try:
        state = _read(path)
    except Exception:  # none yet, or another run's that cannot be read: nothing of this run
        return 0
    return len(state["history"]) if state.get("fingerprint") == fingerprint else 0
