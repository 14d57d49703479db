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


def plot_roc(scores: dict[str, np.ndarray], path: str | Path, title: str = "ROC") -> Path:
    """ROC curves at frame and video level (log-scaled FPR inset shows the low false-alarm region)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for level, colour in (("frame", "tab:blue"), ("video", "tab:orange")):
        preds, target = scores.get(f"{level}_preds"), scores.get(f"{level}_target")
        if preds is None or len(preds) == 0 or len(np.unique(target)) < 2:
            continue
        fpr, tpr, _ = roc_curve(target, preds)
        auc = roc_auc_score(target, preds)
        label = f"{level} (AUC {auc:.4f}, n={len(preds)})"
        axes[0].plot(fpr, tpr, color=colour, label=label)
        axes[1].plot(np.clip(fpr, 1e-5, 1), tpr, color=colour, label=label)
    axes[0].plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes[1].set(xscale="log", xlabel="false positive rate (log)", ylabel="true positive rate",
                title="low false-alarm region", xlim=(1e-4, 1), ylim=(0, 1.01))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    return _save(fig, Path(path))


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
