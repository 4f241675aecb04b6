"""Draw the dashboard's main panels (deploy/monitoring/dashboard.json) from the local Prometheus' query API.

    python scripts/plot_dashboard.py [--minutes 10] [--out docs/dashboard.png]

Grafana is not packaged here, so this renders the same PromQL with matplotlib: throughput in and out, lag per
group, dead letters by reason, batch latency percentiles, entities per method and the confidence histogram per
method. Run it right after `make demo` (or `python -m extractor bench pipeline`), while `python -m services up`'s
Prometheus still holds the run's samples (2 days).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from services import prometheus  # noqa: E402

PANELS = [
    ("Throughput (entries/s)", "reqps", [
        ('sum(rate(extractor_entries_processed_total{component="worker"}[30s]))'
         ' + sum(rate(extractor_dead_lettered_total{component="worker"}[30s]))', "read by workers"),
        ('sum(rate(extractor_entries_processed_total{component="worker"}[30s]))', "processed"),
        ("sum(rate(extractor_sink_documents_written_total[30s]))", "documents written (sink)"),
    ]),
    ("Lag per group (records)", "", [("sum by (component) (extractor_consumer_lag)", "{component}")]),
    ("Dead-lettered by reason (/s)", "reqps", [
        ("sum by (reason) (rate(extractor_dead_lettered_total[30s]))", "{reason}")]),
    ("Latency (s): entry = Kafka timestamp to durable output", "s", [
        ("histogram_quantile(0.5, sum by (le) (rate(extractor_entry_latency_seconds_bucket[30s])))", "entry p50"),
        ("histogram_quantile(0.95, sum by (le) (rate(extractor_entry_latency_seconds_bucket[30s])))", "entry p95"),
        ("histogram_quantile(0.95, sum by (le) (rate(extractor_batch_seconds_bucket{component=\"worker\"}[30s])))",
         "batch p95 (worker)"),
    ]),
    ("Entities per method (/s)", "reqps", [
        ("sum by (method, label) (rate(extractor_entities_total[30s]))", "{method} {label}")]),
]


def _label(template: str, metric: dict[str, str]) -> str:
    return template.format_map({k: metric.get(k, "") for k in ("component", "reason", "method", "label")})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="the window before now (default 10)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    args = ap.parse_args()
    end = time.time()
    start = end - args.minutes * 60
    step = max(2.0, args.minutes * 60 / 300)
    fig, axes = plt.subplots(3, 2, figsize=(13, 10))
    drawn = 0
    for ax, (title, _unit, queries) in zip(axes.flat, PANELS, strict=False):
        for expr, template in queries:
            for series in prometheus.query_range(expr, start, end, step):
                xs = [(float(t) - end) / 60 for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                if any(y == y for y in ys):  # not all NaN
                    ax.plot(xs, ys, label=_label(template, series["metric"]))
                    drawn += 1
        ax.set_title(title)
        ax.set_xlabel("minutes before now")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    # the confidence histogram per method over the whole window
    ax = axes.flat[5]
    window = f"{max(1, int(args.minutes * 60))}s"
    res = prometheus.query(f"sum by (method, le) (increase(extractor_entity_confidence_bucket[{window}]))", at=end)
    by_method: dict[str, list[tuple[float, float]]] = {}
    for r in res:
        le = r["metric"]["le"]
        by_method.setdefault(r["metric"]["method"], []).append((float("inf") if le == "+Inf" else float(le),
                                                                float(r["value"][1])))
    width = 0.8 / max(1, len(by_method))
    for i, (method, points) in enumerate(sorted(by_method.items())):
        points.sort()
        edges = [le for le, _ in points if le != float("inf")]
        cum = [c for le, c in points if le != float("inf")]
        counts = [c - (cum[j - 1] if j else 0.0) for j, c in enumerate(cum)]
        ax.bar([k + i * width for k in range(len(edges))], counts, width=width, label=method)
        ax.set_xticks(range(len(edges)), [f"≤{e:g}" for e in edges], fontsize=7)
        drawn += 1
    ax.set_title("Confidence histogram per method (window)")
    if by_method:
        ax.legend(fontsize=7)
    fig.suptitle(f"Clinical extractor, last {args.minutes:g} min (Prometheus {prometheus.url()})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({drawn} series)")
    return 0 if drawn else 1


if __name__ == "__main__":
    raise SystemExit(main())
