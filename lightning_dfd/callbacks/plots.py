"""PNG figures people look at: ROC curves and score histograms (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from lightning_dfd.io import atomic_path


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def unmeasurable_fpr(n_negatives: int) -> float:
    """Upper end of the FPR region a data set cannot measure: a non-zero FPR below ``1 / n_negatives``."""
    return 1.0 / n_negatives if n_negatives > 0 else 1.0


def operating_points(ranking: np.ndarray, is_positive: np.ndarray, fpr_points) -> list[tuple[float, float, float]]:
    """``(target FPR, FPR, TPR)`` of the ROC point each TPR@FPR reads (the largest TPR with FPR <= target, on the
    oriented ``ranking``), for the targets the data can measure (``target >= 1 / n_negatives``)."""
    n_negatives = int((is_positive == 0).sum())
    fpr, tpr, _ = roc_curve(is_positive, ranking, drop_intermediate=False)
    points = []
    for target in np.asarray(fpr_points, dtype=np.float64).reshape(-1):
        if target * n_negatives < 1 - 1e-9:
            continue
        allowed = fpr <= target + 1e-12  # (0, 0) always is
        best = int(np.flatnonzero(allowed)[np.argmax(tpr[allowed])])
        points.append((float(target), float(fpr[best]), float(tpr[best])))
    return points


def threshold_point(preds: np.ndarray, is_positive: np.ndarray, threshold: float, positive: int
                    ) -> tuple[float, float]:
    """``(FPR, TPR)`` of the decision ``attack / fake <=> preds >= threshold`` (APCER / BPCER / accuracy) in the
    convention of ``positive`` (1: fakes flagged; 0: bona fide accepted, i.e. ``preds < threshold``)."""
    flagged = np.asarray(preds, dtype=np.float64) >= threshold
    accepted_as_positive = flagged if positive == 1 else ~flagged
    return (float(accepted_as_positive[is_positive == 0].mean()), float(accepted_as_positive[is_positive == 1].mean()))


def roc_figure(scores: dict[str, np.ndarray], title: str = "ROC"):
    """The ROC figure of :func:`plot_roc` (returned open, for callers and tests that inspect it).

    Curves use the ranking scores (``{level}_ranking``: log-odds, no ties at a probability of 1.0) when present,
    else the probabilities, and the positive class of TPR@FPR (``tpr_positive_label``: 1 fake, 0 bona fide).
    On the log-FPR panel, the region ``FPR < 1 / n_negatives`` of each level is shaded: TPR@FPR there is the
    TPR at zero false positives, not a measurement (the metrics report it as NaN).

    Operating points are marked on both panels: a circle per ``fpr_points`` rate the level can measure (the ROC
    point its TPR@FPR reads, labelled with the value) and a square at the decision threshold
    (``{level}_threshold``: the point of accuracy / APCER / BPCER), when ``scores`` carries them.
    """
    positive = int(scores.get("tpr_positive_label", 1))
    positive_name, negative_name = ("fake", "real") if positive == 1 else ("bona fide", "attack")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    lowest_fpr = 1e-4
    for level, colour in (("frame", "tab:blue"), ("video", "tab:orange")):
        ranking = scores.get(f"{level}_ranking", scores.get(f"{level}_preds"))
        target = scores.get(f"{level}_target")
        if ranking is None or len(ranking) == 0 or len(np.unique(target)) < 2 or np.isnan(ranking).any():
            continue
        is_positive = (np.asarray(target) == positive).astype(int)
        oriented = np.nan_to_num(np.asarray(ranking, dtype=np.float64)) * (1.0 if positive == 1 else -1.0)
        fpr, tpr, _ = roc_curve(is_positive, oriented)
        auc = roc_auc_score(is_positive, oriented)
        n_negatives = int((is_positive == 0).sum())
        label = f"{level} (AUC {auc:.4f}, n={len(ranking)}, {n_negatives} {negative_name})"
        axes[0].plot(fpr, tpr, color=colour, label=label)
        lowest_fpr = min(lowest_fpr, 0.1 * unmeasurable_fpr(n_negatives))
        axes[1].plot(np.clip(fpr, lowest_fpr, 1), tpr, color=colour, label=label)
        limit = unmeasurable_fpr(n_negatives)
        axes[1].axvspan(1e-12, limit, color=colour, alpha=0.12, lw=0,
                        label=f"{level}: FPR < 1/{n_negatives} = {limit:.2g} not measurable")
        for target_fpr, x, y in operating_points(oriented, is_positive, scores.get("fpr_points", ())):
            for ax, shown_x in ((axes[0], x), (axes[1], max(x, lowest_fpr))):
                ax.plot([shown_x], [y], "o", color=colour, mfc="none", ms=7, clip_on=False,
                        label=f"{level} TPR@FPR={target_fpr:g}: {y:.4f}" if ax is axes[0] else "_nolegend_")
        threshold = scores.get(f"{level}_threshold")
        preds = scores.get(f"{level}_preds")
        if threshold is not None and preds is not None and not np.isnan(preds).any():
            x, y = threshold_point(preds, is_positive, float(threshold), positive)
            for ax, shown_x in ((axes[0], x), (axes[1], max(x, lowest_fpr))):
                ax.plot([shown_x], [y], "s", color=colour, ms=6, clip_on=False,
                        label=(f"{level} threshold {float(threshold):g}: FPR {x:.4f}, TPR {y:.4f}" if ax is axes[0]
                               else "_nolegend_"))
    axes[0].plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    axes[0].set(xlabel=f"false positive rate ({negative_name}s scored {positive_name})",
                ylabel=f"true positive rate ({positive_name})", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes[1].set(xscale="log", xlabel="false positive rate (log)", ylabel="true positive rate",
                title="low false-alarm region (shaded: below 1 / n_negatives)", xlim=(lowest_fpr, 1), ylim=(0, 1.01))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
    return fig


def plot_roc(scores: dict[str, np.ndarray], path: str | Path, title: str = "ROC") -> Path:
    """ROC curves at frame and video level, linear and log FPR (see :func:`roc_figure`), as a PNG at ``path``."""
    return _save(roc_figure(scores, title), Path(path))


def plot_score_histogram(scores: dict[str, np.ndarray], path: str | Path, threshold: float = 0.5) -> Path:
    """Histograms of the fake probability of real and fake samples, frame and video level."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 41)
    for ax, level in zip(axes, ("frame", "video")):
        preds, target = scores.get(f"{level}_preds"), scores.get(f"{level}_target")
        if preds is not None and len(preds):
            for value, name, colour in ((0, "real", "tab:green"), (1, "fake", "tab:red")):
                sel = preds[target == value]
                if len(sel):
                    ax.hist(sel, bins=bins, alpha=0.6, color=colour, label=f"{name} (n={len(sel)})")
        ax.axvline(threshold, color="black", ls="--", lw=0.8)
        ax.set(xlabel="fake probability", ylabel="count", title=f"{level}-level scores")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, Path(path))


def roc_points(scores: dict[str, np.ndarray], level: str) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """``(fpr, tpr, auc, n_negatives)`` of one level of a score table (the arrays of
    :attr:`~lightning_dfd.metrics.DetectionScores.last_scores`), oriented by ``tpr_positive_label`` as
    :func:`roc_figure` reads it; None where no ROC exists (no scores, one class, NaN scores)."""
    ranking = scores.get(f"{level}_ranking", scores.get(f"{level}_preds"))
    target = scores.get(f"{level}_target")
    if ranking is None or len(ranking) == 0 or len(np.unique(target)) < 2 or np.isnan(ranking).any():
        return None
    positive = int(scores.get("tpr_positive_label", 1))
    is_positive = (np.asarray(target) == positive).astype(int)
    oriented = np.asarray(ranking, dtype=np.float64) * (1.0 if positive == 1 else -1.0)
    fpr, tpr, _ = roc_curve(is_positive, oriented)
    return fpr, tpr, float(roc_auc_score(is_positive, oriented)), int((is_positive == 0).sum())


def plot_roc_datasets(curves: dict[str, dict[str, np.ndarray]], path: str | Path, title: str = "ROC") -> Path:
    """One PNG with the ROC curve of every score table in ``curves`` (name -> ``last_scores``, e.g. one per
    model and dataset): frame level left, video level right, linear FPR as papers print them, AUC and the
    number of samples in each legend entry. The low-FPR region of each table is in its own :func:`plot_roc`."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for index, (name, scores) in enumerate(curves.items()):
        for ax, level in zip(axes, ("frame", "video")):
            points = roc_points(scores, level)
            if points is not None:
                fpr, tpr, auc, _ = points
                ax.plot(fpr, tpr, color=colours(index % colours.N),
                        label=f"{name} (AUC {auc:.4f}, n={len(scores[f'{level}_target'])})")
    positive = int(next(iter(curves.values())).get("tpr_positive_label", 1)) if curves else 1
    positive_name, negative_name = ("fake", "real") if positive == 1 else ("bona fide", "attack")
    for ax, level in zip(axes, ("frame", "video")):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel=f"false positive rate ({negative_name}s scored {positive_name})",
               ylabel=f"true positive rate ({positive_name})", title=f"{title}: {level} level")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
    return _save(fig, Path(path))
