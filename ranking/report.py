"""The evaluation's results (`EvalResult`) and its report: a Markdown page with two PNG plots
(NDCG@k by model, importance)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr", "coverage")


@dataclass
class EvalResult:
    """Everything `engram eval` reports."""

    split: dict[str, Any]
    metrics: dict[str, dict[str, float]]  # model -> metric, the mean over the seeds
    candidates: dict[str, dict[str, float]]
    training: dict[str, Any]
    metrics_std: dict[str, dict[str, float]] = field(default_factory=dict)  # over the seeds
    ndcg_curve: dict[str, dict[int, float]] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    report: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON `engram eval --json` prints."""
        out = asdict(self)
        out["ndcg_curve"] = {
            m: {str(k): v for k, v in c.items()} for m, c in self.ndcg_curve.items()
        }
        return out


def metrics_table(
    metrics: dict[str, dict[str, float]], spread: dict[str, dict[str, float]] | None = None
) -> str:
    """The models' metrics as a Markdown table, best NDCG@10 first; with `spread` (standard
    deviations over seeds), each cell is mean ± std. Pure."""
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, row in sorted(metrics.items(), key=lambda kv: -kv[1].get("ndcg@10", 0.0)):
        cells = []
        for m in METRICS:
            cell = f"{row.get(m, float('nan')):.4f}"
            if spread:
                cell += f" ± {spread.get(name, {}).get(m, float('nan')):.4f}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def candidates_table(candidates: dict[str, dict[str, float]]) -> str:
    """Recall of each candidate source and of the ranked union, as Markdown. Pure."""
    lines = ["| source | recall@100 | recall@500 |", "|---|---|---|"]
    for name, row in candidates.items():
        if "mean_size" in row:  # a union: "union", or "union_asof" for the point-in-time sources
            lines.append(
                f"| {name} (mean {row['mean_size']:.0f} items) | {row['recall']:.4f} (all) | |"
            )
        else:
            lines.append(f"| {name} | {row['recall@100']:.4f} | {row['recall@500']:.4f} |")
    return "\n".join(lines)


def write_report(result: EvalResult, out_dir: Path) -> Path:
    """Write report.md, ndcg_at_k.png and importance.png into `out_dir`; returns report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 4))
    for name, curve in result.ndcg_curve.items():
        ks = sorted(curve)
        axes.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    axes.set_xscale("log")
    axes.set_xlabel("k")
    axes.set_ylabel("NDCG@k")
    axes.set_title("NDCG@k by model")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out_dir / "ndcg_at_k.png", dpi=100)
    plt.close(figure)

    top = list(result.importance.items())[:20][::-1]
    figure, axes = plt.subplots(figsize=(7, 6))
    axes.barh([name for name, _ in top], [value for _, value in top])
    axes.set_xlabel("total gain")
    axes.set_title("LightGBM feature importance (top 20)")
    figure.tight_layout()
    figure.savefig(out_dir / "importance.png", dpi=100)
    plt.close(figure)

    split = result.split
    seeds = int(split.get("seeds", 1))
    text = "\n\n".join(
        [
            "# Ranking evaluation",
            f"Per-user temporal split: {split['evaluated_users']} users evaluated, "
            f"{split['relevant_pairs']} relevant held-out pairs, catalog {split['catalog_size']}.",
            f"## Metrics (k = 10 unless stated; mean over {seeds} seed(s))",
            metrics_table(result.metrics, result.metrics_std if seeds > 1 else None),
            "## Candidate recall (test cutoffs)",
            candidates_table(result.candidates),
            "## Training",
            "\n".join(f"- {k}: {v}" for k, v in result.training.items()),
            "![NDCG@k](ndcg_at_k.png)",
            "![importance](importance.png)",
            "## Seconds",
            "\n".join(f"- {k}: {v}" for k, v in result.seconds.items()),
        ]
    )
    path = out_dir / "report.md"
    path.write_text(text + "\n")
    return path
