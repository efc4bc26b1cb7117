"""zs.advise on MobileNetV2 (classification at 224) and its SSDLite detection baseline (320) on every built-in
NPU profile, beside what the ``refine`` search finds.

Usage: python benchmarks/advise.py [--budget 2000] [--seed 0]
Writes benchmarks/results/advise.md.

For each task and device: every move advise lists (ranked by estimated latency gained), then the refine
searches of the same baseline (:func:`zeroshot.refine.refine`, regularized evolution over ``--budget``
candidates): per-block fusion and per-block fusion with per-stage depth multipliers, each without a score
(the latency floor of those dimensions) and under the topology score (live_macs + entropy, at or above the
baseline's).  Advise costs one estimate per candidate move; refine searches.
"""
import argparse
import time
from pathlib import Path

from zeroshot.advice import advise
from zeroshot.estimator.devices import list_devices, load_device
from zeroshot.refine import TOPOLOGY_SCORE, refine
from zeroshot.spaces import get_space
from zeroshot.spaces.baselines import get_baseline

OUT = Path(__file__).parent / "results" / "advise.md"
TASKS = ("classify", "detect")
SEARCHES = ((("fusion",), ()), (("fusion",), TOPOLOGY_SCORE), (("fusion", "depth-multiplier"), ()),
            (("fusion", "depth-multiplier"), TOPOLOGY_SCORE))


def npus() -> list[str]:
    return [name for name in list_devices() if load_device(name).kind == "npu"]


def advise_section(task: str, device: str) -> tuple[list[str], dict]:
    """The moves table of one task on one device, and the best gain per move kind."""
    space = get_space("mbv2", task=task)
    t0 = time.perf_counter()
    advice = advise(get_baseline("mbv2", "mobilenetv2", task), space=space, device=device)
    seconds = time.perf_counter() - t0
    lines = [f"#### {device}: {advice.before['latency_ms']:.3f} ms, {len(advice)} moves ({seconds:.2f} s)", "",
             "| # | move | latency ms | gain |", "|---|---|---|---|"]
    best: dict[str, float] = {}
    for i, row in enumerate(advice.table, 1):
        lines.append(f"| {i} | {row['move']} | {row['latency_ms']:.3f} | {row['gain_pct']:+.1f}% |")
        best[row["kind"]] = max(best.get(row["kind"], -1e9), row["gain_pct"])
    paying = [r["where"].split(" (")[0] for r in advice.blocks if r["pays"]]
    lines += ["", f"Blocks whose fusion pays alone: {', '.join(paying) or 'none'} (of {len(advice.blocks)}).", ""]
    return lines, best


def refine_gains(task: str, device: str, budget: int, seed: int) -> list[float]:
    space = get_space("mbv2", task=task)
    base = space.parse(get_baseline("mbv2", "mobilenetv2", task))
    out = []
    for dims, proxies in SEARCHES:
        r = refine(space, base, dims, load_device(device), budget=budget, seed=seed, proxies=proxies)
        out.append(100 * (r["baseline"]["latency_ms"] - r["latency_ms"]) / r["baseline"]["latency_ms"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=int, default=2000, help="refine candidates per search")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    devices = npus()
    summary, details = [], []
    for task in TASKS:
        details += [f"### {task}", ""]
        for device in devices:
            lines, best = advise_section(task, device)
            details += lines
            gains = refine_gains(task, device, args.budget, args.seed)
            summary.append(f"| {task} | {device} | " + " | ".join(
                f"{best[k]:+.1f}%" if k in best else "-" for k in ("fuse", "dw2conv", "snap-down", "depth"))
                + " | " + " | ".join(f"{g:+.1f}%" for g in gains) + " |")
            print(summary[-1], flush=True)
    text = [
        "# advise: the design moves on MobileNetV2, beside refine", "",
        f"`python benchmarks/advise.py --budget {args.budget} --seed {args.seed}`", "",
        "Latency gained on each built-in NPU profile (estimator; positive = faster). advise columns: the best "
        "move of each kind (fuse: one block or all blocks that pay alone; snap-down: widths down to a multiple "
        "of the device's lanes; depth: a uniform depth multiplier 0.75 or 0.5). refine columns: the fastest "
        f"candidate of a {args.budget}-candidate search (seed {args.seed}), with no score (floor) or at or "
        "above the baseline's topology score (live_macs + entropy).", "",
        "| task | device | advise fuse | advise dw2conv | advise snap-down | advise depth | refine fusion floor "
        "| refine fusion topology | refine fusion+depth floor | refine fusion+depth topology |",
        "|---|---|---|---|---|---|---|---|---|---|", *summary, "",
        "## Every move advise lists", "", *details]
    OUT.write_text("\n".join(text).rstrip() + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
