"""The report's latent-space sections as Markdown: maps, decoded manifolds, confusions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from training.report.markdown import figure_file, links, percent, score, span, table
from training.report.metrics import CLASSES, KNN_NEIGHBOURS, ConfusedPair, confused_pairs
from training.report.results import (
    MANIFOLD_PERCENTILES,
    MANIFOLD_STEPS,
    Baselines,
    Evaluation,
    ModelResult,
    baseline,
)

# The pairs the reference report says the codes mix up; checked here, not assumed.
REFERENCE_CLAIMS = ((4, 9), (5, 8))
PAIRS = CLASSES * (CLASSES - 1) // 2  # unordered digit pairs: 45
SCORE_NAMES = (("knn_accuracy", "k-NN accuracy"), ("silhouette", "silhouette"), ("ari", "ARI"))


def _beats(results: Sequence[ModelResult], baselines: Baselines, metric: str) -> int:
    evs = [r.evaluation for r in results]
    return sum(getattr(ev.scores, metric) > getattr(baseline(baselines, ev).scores, metric) for ev in evs)


def latent_maps(results: Sequence[ModelResult], baselines: Baselines) -> str:
    evs = [r.evaluation for r in results]

    def spread(metric: str, fmt: Callable[[float], str] = score) -> str:
        return span(evs, lambda ev: getattr(ev.scores, metric), lambda ev: ev.label, fmt)

    counts = [f"{_beats(results, baselines, m)} of {len(results)} by {label}" for m, label in SCORE_NAMES]
    parts = [
        "## Latent maps",
        "Test codes coloured by digit. For p = 2 the map is the code itself; for p > 2 it is the 2-D PCA "
        "projection stored with the checkpoint, so digits that overlap in the picture may still be apart in "
        "p dimensions: the scores below are computed on the full codes.",
        f"![Test codes of every configuration, coloured by digit]({figure_file('latent-maps')})",
        f"One figure per configuration: {links('latent', [r.name for r in results])}.",
        f"- {KNN_NEIGHBOURS}-NN accuracy: {spread('knn_accuracy', percent)}.\n"
        f"- Silhouette of the digit labels: {spread('silhouette')}.\n"
        f"- Adjusted Rand index of k-means against the digits: {spread('ari')}.\n"
        f"- Configurations whose codes score higher than PCA's codes of the same size: {', '.join(counts)}.",
    ]
    with_manifold = [r for r in results if r.manifold is not None]
    if with_manifold:
        low, high = MANIFOLD_PERCENTILES
        parts += [
            "### Decoded manifolds (p = 2)",
            f"A {MANIFOLD_STEPS} by {MANIFOLD_STEPS} grid of points across the latent plane, from "
            f"percentile {low:g} to percentile {high:g} of the test codes on each axis, each decoded into an image.",
            f"![Decoded latent grids of the p = 2 configurations]({figure_file('manifolds')})",
            f"One figure per configuration: {links('manifold', [r.name for r in with_manifold])}.",
        ]
    return "\n\n".join(parts)


def _pair(pair: ConfusedPair) -> str:
    return f"{pair.a} ↔ {pair.b}: {pair.a_as_b} + {pair.b_as_a} = {pair.count} ({percent(pair.rate)})"


def _confusion_row(ev: Evaluation, pairs: list[ConfusedPair], top: int) -> list[str]:
    errors = int(ev.scores.confusion.sum() - ev.scores.confusion.trace())
    cells = [_pair(pair) for pair in pairs] + ["-"] * (top - len(pairs))
    return [ev.label, percent(ev.scores.knn_accuracy), f"{errors:,}", *cells]


def _rank(claim: tuple[int, int], confusion: np.ndarray) -> tuple[int, int]:
    """Where a pair ranks among all digit pairs by mistakes (1 = most), and its count."""
    ranked = confused_pairs(confusion, top=PAIRS)
    for rank, pair in enumerate(ranked, start=1):
        if (pair.a, pair.b) == claim:
            return rank, pair.count
    return len(ranked) + 1, 0  # never confused: behind every pair that was


def _claim(claim: tuple[int, int], evs: Sequence[Evaluation], top: int) -> str:
    ranks = [_rank(claim, ev.scores.confusion) for ev in evs]
    among = sum(rank <= top for rank, _count in ranks)
    first = sum(rank == 1 for rank, _count in ranks)
    (low, _), (high, _) = min(ranks), max(ranks)
    counts = span(range(len(evs)), lambda i: ranks[i][1], lambda i: evs[i].label, lambda c: f"{c:,.0f}")
    a, b = claim
    where = f"rank {low}" if low == high else f"rank {low} to {high}"
    if not among:
        verdict = f"is not among the {top} most confused pairs of any configuration"
    else:
        verdict = f"is among the {top} most confused pairs for {among} of {len(evs)} configurations"
        verdict += f" (the most confused for {first})" if first else ""
    return f"- {a} ↔ {b} {verdict}: {where} of {PAIRS} pairs, {counts} mistakes."


def confusions(results: Sequence[ModelResult], baselines: Baselines, top: int = 3) -> str:
    evs = [r.evaluation for r in results]
    tops = [confused_pairs(ev.scores.confusion, top) for ev in evs]
    rows = [_confusion_row(ev, pairs, top) for ev, pairs in zip(evs, tops, strict=True)]
    rows += [_confusion_row(b, confused_pairs(b.scores.confusion, top), top) for b in baselines.values()]
    overall = confused_pairs(np.sum([ev.scores.confusion for ev in evs], axis=0), 1)
    header = ["configuration", f"{KNN_NEIGHBOURS}-NN accuracy", "errors"]
    header += [f"most confused pair {i + 1}" for i in range(top)]
    lines = [_claim(claim, evs, top) for claim in REFERENCE_CLAIMS]
    if overall:
        pair = overall[0]
        lines.append(
            f"- Summed over the configurations, the most confused pair is {pair.a} ↔ {pair.b} "
            f"({pair.count:,} test images)."
        )
    return "\n\n".join([
        "## Confusions",
        f"The digit pairs that a {KNN_NEIGHBOURS}-NN classifier on the latent codes (test codes looked up among "
        "the training codes) mixes up most. Each cell reads *a ↔ b: a taken for b + b taken for a = both "
        "(share of the test images of a and b)*.",
        table(header, rows, align="lrr" + "l" * top),
        "The reference report says the codes confuse "
        + " and ".join(f"{a} with {b}" for a, b in REFERENCE_CLAIMS)
        + "; the counts above check it:",
        "\n".join(lines),
    ])  # fmt: skip
