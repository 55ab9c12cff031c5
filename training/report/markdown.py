"""Small Markdown helpers for the report: tables, numbers, figure paths, ranges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
FIGURES = "figures"  # the report's own folder of PNGs, next to its README.md


def figure_file(kind: str, name: str | None = None) -> str:
    """Path of a figure relative to the report: figures/latent-maps.png, figures/latent_mlp2-p2.png.

    Model names never hold "_", so a model's figure can never take the name of a shared one.
    """
    return f"{FIGURES}/{kind}{'_' + name if name else ''}.png"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A GitHub Markdown table; `align` has an "l" or "r" per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return "\n".join("| " + " | ".join(line) + " |" for line in [header, rule, *rows])


def mse(value: float) -> str:
    return f"{value:.4f}"


def percent(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f} %"


def score(value: float) -> str:
    return f"{value:.3f}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def names(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c', each in bold."""
    bold = [f"**{item}**" for item in items]
    return bold[0] if len(bold) == 1 else ", ".join(bold[:-1]) + " and " + bold[-1]


def links(kind: str, items: Sequence[str]) -> str:
    return " · ".join(f"[{name}]({figure_file(kind, name)})" for name in items)


def extremes(items: Sequence[T], key: Callable[[T], float]) -> tuple[T, T]:
    """The items with the lowest and the highest key; ties go to the first listed."""
    return min(items, key=key), max(items, key=key)


def span(items: Sequence[T], key: Callable[[T], float], label: Callable[[T], str], fmt: Callable[[float], str]) -> str:
    """'0.0312 (mlp2-p16) to 0.0415 (mlp1-p2)', or one value when there is a single item."""
    low, high = extremes(items, key)
    if len(items) == 1:
        return f"{fmt(key(low))} ({label(low)})"
    return f"{fmt(key(low))} ({label(low)}) to {fmt(key(high))} ({label(high)})"
