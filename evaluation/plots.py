"""PNG plots of a report (matplotlib, Agg backend): reliability diagram and precision/recall vs threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.calibration import sweep
from evaluation.scoring import Scores


def write_plots(report: dict[str, Any], scores: Scores, out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    # 1. reliability diagram (strict): observed precision per confidence bin against the diagonal
    cal = report["calibration"]["strict"]
    bins = cal["bins"]
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 0.1
    xs = [b["lower"] + width / 2 for b in bins if b["count"]]
    ax.bar(
        xs,
        [b["precision"] for b in bins if b["count"]],
        width=width * 0.9,
        alpha=0.7,
        label="observed precision",
        edgecolor="black",
    )
    ax.plot(
        [b["mean_confidence"] for b in bins if b["count"]],
        [b["precision"] for b in bins if b["count"]],
        "o-",
        color="tab:red",
        label="at mean confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ece = cal["ece"]
    ax.set_title(f"Reliability (strict), ECE = {ece:.3f}" if ece is not None else "Reliability (strict)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left")
    axn.bar(
        [b["lower"] + width / 2 for b in bins],
        [b["count"] for b in bins],
        width=width * 0.9,
        color="tab:grey",
    )
    axn.set_ylabel("predictions")
    axn.set_xlabel("confidence")
    fig.tight_layout()
    p = out / "reliability.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    # 2. precision and recall vs threshold, overall and by method
    sw = sweep(scores, "strict")
    fig, (ap, ar) = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    for name, rows in sw.items():
        ts = [r["threshold"] for r in rows]
        style = {"linewidth": 2.5, "color": "black"} if name == "all" else {}
        # precision of nothing kept is undefined: leave a gap rather than draw a drop to 0
        ap.plot(ts, [r["precision"] if r["predictions"] else float("nan") for r in rows], label=name, **style)
        ar.plot(ts, [r["recall"] for r in rows], label=name, **style)
    ap.set_title("precision vs confidence threshold (strict)")
    ar.set_title("recall (share of all gold) vs threshold (strict)")
    for a in (ap, ar):
        a.set_xlabel("threshold (keep confidence >= t)")
        a.set_ylim(0, 1.02)
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    p = out / "precision_recall_threshold.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    # 3. F1 by chain prefix, when there is one
    if report.get("by_stage"):
        fig, a = plt.subplots(figsize=(6, 4))
        names = [s["name"] for s in report["by_stage"]]
        for i, mode in enumerate(("strict", "lenient")):
            vals = [s["fields"]["micro"][mode]["f1"] for s in report["by_stage"]]
            a.bar([x + i * 0.4 for x in range(len(names))], vals, width=0.4, label=mode)
        a.set_xticks([x + 0.2 for x in range(len(names))], names, rotation=15)
        a.set_ylabel("micro F1")
        a.set_ylim(0, 1)
        a.set_title("F1 by chain prefix")
        a.legend()
        fig.tight_layout()
        p = out / "f1_by_stage.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written
