"""PNG plots: throughput against batch size per system, and the batch-1 latency distribution."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_throughput(result: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in result["systems"].values():
        sizes = sorted(s["batches"], key=int)
        ax.plot([int(b) for b in sizes], [s["batches"][b]["questions_per_s"] for b in sizes],
                marker="o", linestyle="--" if s["peer"] else "-", label=s["label"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("questions / s")
    machine = result["hardware"]["gpu"]["name"] if "gpu" in result["hardware"] else result["hardware"]["cpu"]["model"]
    ax.set_title(f"Throughput, {result['meta']['questions']} questions ({machine})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(result: dict, path: Path) -> None:
    data = [(s["label"], s["batches"]["1"]["latency_ms"]["all"]) for s in result["systems"].values()
            if "1" in s["batches"] and "latency_ms" in s["batches"]["1"]]
    first_pass = any("second_pass" in s["batches"].get("1", {}) for s in result["systems"].values())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if data:
        ax.boxplot([d for _, d in data], whis=(1, 99), showfliers=True)
        ax.set_xticks(range(1, len(data) + 1), [label for label, _ in data], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per question (batch 1)")
    ax.set_title("Latency distribution, batch 1" + (", first pass from a fresh load" if first_pass else "")
                 + " (whiskers: p1-p99)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
