"""What every benchmark shares: repeats and medians, Markdown tables, the machine's state, output files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "AE_DATA_DIR"


def default_data_dir() -> Path:
    """MNIST as the tests find it: $AE_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get(DATA_DIR_ENV, REPO.parent / "shared" / "data"))


def emit(text: str = "") -> None:
    """Benchmarks report on stdout (the linter forbids print)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]  # NaN means "not measured"
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt(value: Any, digits: int = 0) -> str:
    """Numbers with thousands separators; NaN and None as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _other_training() -> list[str]:
    """Command lines of ae-train processes running now: they would share the cores with us."""
    try:
        found = subprocess.run(["pgrep", "-af", "ae-train"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in found.splitlines() if line.strip() and str(os.getpid()) != line.split()[0]]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_state() -> str:
    """The commit, and which files of the measured code differ from it (read-only git commands)."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--", "service", "models", "training", "bench").splitlines()
    changed = [line.split(maxsplit=1)[-1] for line in status]  # "XY path": the output's first space is stripped
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def machine() -> dict[str, Any]:
    """Where and when the numbers came from, including how busy the machine was."""
    info: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "ae_train_running": len(_other_training()),
        "code": code_state(),
    }
    return info


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", CUDA: {info['cuda']}" if info["cuda"] else ", no GPU"
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores{gpu}; Python {info['python']}, torch {info['torch']} "
        f"({info['torch_threads']} threads); load average {info['load_average']} at the start, "
        f"{info['ae_train_running']} ae-train processes running; {info['when']}. Code: {info['code']}."
    )


def base_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run with tiny budgets (for CI)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement; the tables show medians")
    parser.add_argument("--out", type=Path, help="folder for NAME.json and NAME.md")
    return parser


def _jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)


def report(name: str, tables: Sequence[Table], info: dict[str, Any], out: Path | None, extra: Any = None) -> None:
    """Print the tables as Markdown and, with `out`, write them as NAME.md and NAME.json."""
    command = "python -m bench." + name + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    text = "\n".join([machine_line(info), "", f"Command: `{command}`", "", *(t.markdown() for t in tables)])
    emit(text)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    payload = {"command": command, "machine": info, "tables": [asdict(t) for t in tables], "data": extra}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1, default=_jsonable))
    emit(f"wrote {out / name}.md and .json")
