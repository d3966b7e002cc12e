"""PNG plots: throughput against batch size per system, and the batch-1 latency distribution."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

LOG_Y_SPREAD = 20  # a y range wider than this factor is drawn on a log scale


def _order(systems: dict) -> list[dict]:
    """qa-engine's systems first (drawn last, on top), then the peers."""
    return sorted(systems.values(), key=lambda s: s["peer"])


def plot_throughput(result: dict, path: Path) -> None:
    """throughput_figure saved as PNG."""
    fig = throughput_figure(result)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def throughput_figure(result: dict) -> Figure:
    """Questions/s against batch size: qa-engine solid and bold, peers dashed; the legend right of the axes,
    so that it covers no line."""
    fig, ax = plt.subplots(figsize=(10, 4.8))
    values = []
    for s in _order(result["systems"]):
        sizes = sorted(s["batches"], key=int)
        qps = [s["batches"][b]["questions_per_s"] for b in sizes]
        values += qps
        ax.plot([int(b) for b in sizes], qps, marker="o", linestyle="--" if s["peer"] else "-",
                linewidth=1.2 if s["peer"] else 2.6, markersize=4 if s["peer"] else 6,
                zorder=2 if s["peer"] else 3, label=s["label"])
    ax.set_xscale("log", base=2)
    if values and min(values) > 0 and max(values) / min(values) > LOG_Y_SPREAD:
        ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("questions / s")
    machine = result["hardware"]["gpu"]["name"] if "gpu" in result["hardware"] else result["hardware"]["cpu"]["model"]
    ax.set_title(f"Throughput, {result['meta']['questions']} questions ({machine})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    return fig


def plot_latency(result: dict, path: Path) -> None:
    """Batch-1 latency per system as box plots (whiskers p1-p99), qa-engine's first."""
    data = [(s["label"], s["batches"]["1"]["latency_ms"]["all"]) for s in _order(result["systems"])
            if "1" in s["batches"] and "latency_ms" in s["batches"]["1"]]
    first_pass = any("second_pass" in s["batches"].get("1", {}) for s in result["systems"].values())
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(data) + 2), 4.8))
    if data:
        ax.boxplot([d for _, d in data], whis=(1, 99), showfliers=True)
        ax.set_xticks(range(1, len(data) + 1), [label for label, _ in data], rotation=25, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per question (batch 1)")
    ax.set_title("Latency distribution, batch 1" + (", first pass from a fresh load" if first_pass else "")
                 + " (whiskers: p1-p99)", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
