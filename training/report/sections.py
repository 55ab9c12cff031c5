"""The report's sections as Markdown: tables of the numbers, and sentences computed from them.

Every sentence is derived from the numbers it quotes; none is written in advance, so a
claim the results do not support cannot appear.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from training.report.markdown import duration as fmt_duration
from training.report.markdown import figure_file, links, mse, names, percent, score, span, table
from training.report.metrics import CLASSES, KNN_NEIGHBOURS
from training.report.results import Baselines, Evaluation, ModelResult, baseline


def _recipe(metadata: dict) -> str:
    return str(metadata.get("recipe", {}).get("name", "?"))


def _summary_row(result: ModelResult, baselines: Baselines) -> list[str]:
    ev, meta = result.evaluation, result.metadata
    timings = meta.get("timings", {})
    time = f"{fmt_duration(timings['train_seconds'])} ({timings.get('device', '?')})" if timings else "?"
    return [
        f"**{result.name}**", f"{meta['parameters']:,}", str(ev.p), f"{784 / ev.p:.0f}", _recipe(meta),
        str(meta["epochs"]), mse(ev.train_mse), mse(ev.test_mse),
        percent(ev.test_mse / baseline(baselines, ev).test_mse, 0), time,
        percent(ev.scores.knn_accuracy), score(ev.scores.silhouette), score(ev.scores.ari),
    ]  # fmt: skip


def _pca_row(ev: Evaluation) -> list[str]:
    return [
        f"*{ev.label}*", f"{784 * (ev.p + 1):,}", str(ev.p), f"{784 / ev.p:.0f}", "PCA", "-", mse(ev.train_mse),
        mse(ev.test_mse), "100 %", "-", percent(ev.scores.knn_accuracy), score(ev.scores.silhouette),
        score(ev.scores.ari),
    ]  # fmt: skip


def _recipes(results: Sequence[ModelResult]) -> str:
    """Each distinct recipe with the configurations trained by it: a name alone can hide changed settings."""
    users: dict[str, list[str]] = {}
    for result in results:
        r = result.metadata.get("recipe", {})
        text = f"`{r.get('name')}` (Adam lr {r.get('lr')}, batch {r.get('batch_size')}, {r.get('schedule')} schedule)"
        users.setdefault(text, []).append(result.name)
    if len(users) == 1:
        return f"{next(iter(users))} for every configuration"
    return "; ".join(f"{text} for {', '.join(names)}" for text, names in users.items())


def summary(results: Sequence[ModelResult], baselines: Baselines) -> str:
    header = ["configuration", "parameters", "p", "784/p", "recipe", "epochs", "train MSE", "test MSE"]
    header += ["test MSE / PCA", "training time", f"{KNN_NEIGHBOURS}-NN accuracy", "silhouette", "ARI"]
    rows = [_summary_row(r, baselines) for r in results] + [_pca_row(b) for b in baselines.values()]
    evs = [r.evaluation for r in results]
    losers = [ev.label for ev in evs if ev.test_mse >= baseline(baselines, ev).test_mse]
    ratio = span(evs, lambda ev: ev.test_mse / baseline(baselines, ev).test_mse, lambda ev: ev.label, percent)
    against_pca = "Every configuration beats PCA at its p."
    if losers:
        verb = "does" if len(losers) == 1 else "do"
        against_pca = f"Not every configuration beats PCA at its p: {names(losers)} {verb} not."
    lines = [f"- Test MSE, lowest to highest: {span(evs, lambda ev: ev.test_mse, lambda ev: ev.label, mse)}."]
    lines.append(f"- {against_pca} Test MSE as a share of PCA's at the same p: {ratio}.")
    for (dataset, p), pca in baselines.items():
        group = [ev for ev in evs if ev.p == p and ev.dataset == dataset]
        lines.append(
            f"- p = {p}: test MSE {span(group, lambda ev: ev.test_mse, lambda ev: ev.label, mse)}; "
            f"PCA {mse(pca.test_mse)}. {KNN_NEIGHBOURS}-NN accuracy "
            f"{span(group, lambda ev: ev.scores.knn_accuracy, lambda ev: ev.label, percent)}; "
            f"PCA {percent(pca.scores.knn_accuracy)}."
        )
    return "\n\n".join([
        "## Summary",
        table(header, rows, align="lrrrlrrrrrrrr"),
        "\n".join(lines),
        f"MSE is per pixel, pixels in [0, 1]. Train MSE is the mean over the last epoch's batches, as logged "
        f"in training (for PCA: over the training set); test MSE is over the test set. The parameters of PCA "
        f"are its p components and mean. Latent scores are on the test codes: {KNN_NEIGHBOURS}-NN accuracy "
        f"against the training codes, silhouette of the digit labels (a seeded sample), and the adjusted Rand "
        f"index of k-means (k = {CLASSES}) against the labels. Recipes: {_recipes(results)}.",
    ])  # fmt: skip


def reconstructions(results: Sequence[ModelResult], baselines: Baselines) -> str:
    evs = [r.evaluation for r in results] + list(baselines.values())
    rows = [[ev.label, *(mse(v) for v in ev.digit_mse)] for ev in evs]
    model_evs = [r.evaluation for r in results]
    # Ties go to the digit seen first, in configuration order: repeatable.
    ((hard, n_hard),) = Counter(int(ev.digit_mse.argmax()) for ev in model_evs).most_common(1)
    ((easy, n_easy),) = Counter(int(ev.digit_mse.argmin()) for ev in model_evs).most_common(1)
    lines = [
        f"- The hardest digit to reconstruct is {hard} for {n_hard} of {len(model_evs)} configurations; "
        f"the easiest is {easy} for {n_easy} of {len(model_evs)}.",
    ]
    sizes = sorted({ev.p for ev in model_evs})
    if len(sizes) > 1:
        best = {p: min((ev for ev in model_evs if ev.p == p), key=lambda ev: ev.test_mse) for p in sizes}
        small, large = best[sizes[0]], best[sizes[-1]]
        lines.append(
            f"- The best test MSE at p = {small.p} is {mse(small.test_mse)} ({small.label}); at p = {large.p}, "
            f"{mse(large.test_mse)} ({large.label}): {small.test_mse / large.test_mse:.1f} times lower."
        )
    return "\n\n".join([
        "## Reconstructions",
        "The first two test images of each digit: originals on top, then one row per configuration and the "
        "PCA baselines last.",
        f"![Reconstructions of the same test digits by every configuration]({figure_file('reconstructions')})",
        f"One figure per configuration: {links('reconstructions', [r.name for r in results])}.",
        "Mean test MSE per digit:",
        table(["", *(str(d) for d in range(CLASSES))], rows),
        "\n".join(lines),
    ])  # fmt: skip


def _loss_row(result: ModelResult) -> list[str]:
    history = result.history
    best = min(history, key=lambda row: row["test_mse"])
    last = history[-1]
    return [
        result.name, str(len(history)), mse(history[0]["test_mse"]), f"{mse(best['test_mse'])} ({best['epoch']:.0f})",
        mse(last["test_mse"]), mse(last["train_mse"]), f"{last['test_mse'] - last['train_mse']:+.4f}",
    ]  # fmt: skip


def losses(results: Sequence[ModelResult]) -> str:
    header = ["configuration", "epochs", "test MSE, epoch 1", "lowest test MSE (epoch)", "final test MSE"]
    header += ["final train MSE", "test - train"]

    def rise(result: ModelResult) -> float:  # how far the final test MSE sits above its minimum
        return result.history[-1]["test_mse"] / min(row["test_mse"] for row in result.history) - 1

    worst = max(results, key=rise)
    gaps = span(results, lambda r: r.history[-1]["test_mse"] - r.history[-1]["train_mse"], lambda r: r.name, mse)
    return "\n\n".join([
        "## Loss curves",
        f"![Train and test MSE per epoch, every configuration]({figure_file('loss-curves')})",
        f"One figure per configuration: {links('loss', [r.name for r in results])}.",
        table(header, [_loss_row(r) for r in results]),
        _rise_sentence(worst, rise(worst)) + f"\n- Final test minus train MSE: {gaps}.",
    ])  # fmt: skip


def _rise_sentence(worst: ModelResult, rise: float) -> str:
    if rise == 0:
        return "- Every configuration ends at its lowest test MSE."
    return (
        f"- The final test MSE is at most {percent(rise, 2)} above the lowest one of the same run "
        f"(largest: **{worst.name}**)."
    )
