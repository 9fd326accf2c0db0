#!/usr/bin/env python3
"""Summarises scripts/camvid_recipe.sh output folders (one per seed) in Markdown.

Usage: recipe_summary.py OUT [OUT ...]

Reads OUT/<run>/table.json of the runs fine-adabn, staged-adabn, stage3-atso and fine, and
OUT/oracle-seed*/dusk*.json. Prints, per seed, every generation of every run (the pseudo
labels' @R, each model's @R and @E as trained and with AdaBN, at each image's own size and at
96x128, the agreements), then the headline rows over the seeds (mean and sample standard
deviation), the targets of issue 16 and the PyTorch yardstick of shared/bench/FIDELITY.md.
"""
import glob
import json
import math
import os
import statistics
import sys

RUNS = ["fine-adabn", "staged-adabn", "stage3-atso", "fine"]
# shared/bench/FIDELITY.md, M0 seed 0, on R (96x128): without AdaBN the pseudo labels' @R per
# generation; with AdaBN (T = 2) each model's own prediction on R.
TORCH_NO_ADABN = {"self-learning": [9.45, 8.66, 8.22, 8.03], "stso": [9.45, 8.66, 7.95, 7.25],
                  "atso": [9.45, 8.12, 7.26, 6.63]}
TORCH_ADABN = {"M0 + AdaBN": 24.81, "STSO G1": 26.22, "STSO G2": 27.20,
               "ATSO G1 fold models": (26.81 + 26.96) / 2, "ATSO G2 fold models": (28.54 + 28.23) / 2,
               "ATSO final": 29.26}


def pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def load(out, run):
    path = os.path.join(out, run, "table.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def working(cell, key):
    w = cell.get("atWorkingSize") if cell else None
    return w.get(key) if w else None


def last_row(stage, schedule):
    rows = [r for r in stage["rows"] if schedule in r["cells"]]
    final = [r for r in rows if r["generation"] == "final"]
    return (final or rows)[-1]["cells"][schedule] if rows else None


def per_seed(out):
    lines = [f"## {out}", ""]
    for run in RUNS:
        table = load(out, run)
        if table is None:
            continue
        lines += [f"### {run}", ""]
        if table.get("resolution"):
            lines += [f"Scores at {table['resolution']}; columns marked 96x128 at "
                      f"{table.get('workingResolution') or 'the working size (not measured)'}.", ""]
        lines.append("| stage | schedule | gen | labels @R | @E | @E +AdaBN | @E 96x128 | "
                     "@E +AdaBN 96x128 | @R +AdaBN 96x128 | agrees teacher | agrees M0 |")
        lines.append("|---|---|---|" + "---:|" * 8)
        for base in table["baselines"]:
            c = base["cell"]
            lines.append(f"| baseline | {base['level']} | M0 | - | {pct(c['atE'])} | {pct(c.get('atEAdaBN'))} | "
                         f"{pct(working(c, 'atE'))} | {pct(working(c, 'atEAdaBN'))} | "
                         f"{pct(working(c, 'atRAdaBN'))} | - | - |")
        for stage in table["stages"]:
            for schedule in table["schedules"]:
                for row in stage["rows"]:
                    c = row["cells"].get(schedule)
                    if c is None:
                        continue
                    lines.append(
                        f"| {stage['name']} | {schedule} | {row['generation']} | {pct(c.get('labelsAtR'))} | "
                        f"{pct(c['atE'])} | {pct(c.get('atEAdaBN'))} | {pct(working(c, 'atE'))} | "
                        f"{pct(working(c, 'atEAdaBN'))} | {pct(working(c, 'atRAdaBN'))} | "
                        f"{pct(c.get('agreement'))} | {pct(c.get('agreementWithM0'))} |")
        lines.append("")
    return lines


def headline(out):
    """The headline values of one seed: (as trained, +AdaBN) @E at each image's own size."""
    rows = {}
    fine = load(out, "fine-adabn")
    if fine:
        base = next((b["cell"] for b in fine["baselines"] if b["level"] == "fine"), None)
        if base:
            rows["source only"] = (base["atE"], base["atE"])
            rows["AdaBN alone"] = (base.get("atEAdaBN"), base.get("atEAdaBN"))
        stage = fine["stages"][0]
        for schedule, name in [("self-learning", "self-learning G_T"), ("stso", "STSO G_T"),
                               ("atso", "ATSO final")]:
            c = last_row(stage, schedule)
            if c:
                rows[name] = (c["atE"], c.get("atEAdaBN"))
    staged = load(out, "staged-adabn")
    if staged:
        coarse, fine_stage = staged["stages"][0], staged["stages"][-1]
        base5 = next((b["cell"] for b in staged["baselines"] if b["level"] != "fine"), None)
        if base5:
            rows["source only (5-class)"] = (base5["atE"], base5["atE"])
            rows["AdaBN alone (5-class)"] = (base5.get("atEAdaBN"), base5.get("atEAdaBN"))
        c = last_row(coarse, "atso")
        if c:
            rows["ATSO at super-5 final (5-class)"] = (c["atE"], c.get("atEAdaBN"))
        c = last_row(fine_stage, "atso")
        if c:
            rows["staged super-5 -> 11"] = (c["atE"], c.get("atEAdaBN"))
    stage3 = load(out, "stage3-atso")
    if stage3:
        c = last_row(stage3["stages"][-1], "atso")
        if c:
            rows["super-5, then ATSO at the fine level"] = (c["atE"], c.get("atEAdaBN"))
    unadapted = load(out, "fine")
    if unadapted:
        for schedule, name in [("self-learning", "self-learning G_T, no AdaBN"),
                               ("stso", "STSO G_T, no AdaBN"), ("atso", "ATSO final, no AdaBN")]:
            c = last_row(unadapted["stages"][0], schedule)
            if c:
                rows[name] = (c["atE"], c.get("atEAdaBN"))
    for path in glob.glob(os.path.join(out, "oracle-seed*", "dusk.json")):
        with open(path) as f:
            report = json.load(f)
        score = find_miou(report)
        if score is not None:
            rows["oracle (dusk labels)"] = (score, None)
    return rows


def find_miou(report):
    """The mean IoU of an `evaluate --json` report (the first `meanIoU` found)."""
    if isinstance(report, dict):
        for key in ("meanIoU", "miou"):
            if isinstance(report.get(key), (int, float)):
                return report[key]
        for value in report.values():
            found = find_miou(value)
            if found is not None:
                return found
    if isinstance(report, list):
        for value in report:
            found = find_miou(value)
            if found is not None:
                return found
    return None


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} +- {100 * sd:.2f} (n={len(values)})"


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main():
    outs = sys.argv[1:]
    lines = ["# CamVid day -> dusk, the reference recipe", ""]
    for out in outs:
        lines += per_seed(out)
    seeds = [headline(out) for out in outs]
    names = []
    for rows in seeds:
        names += [n for n in rows if n not in names]
    lines += ["## Headline rows (dusk frames, mIoU %, each image's own size)", "",
              "| model | as trained | +AdaBN |", "|---|---:|---:|"]
    for name in names:
        lines.append(f"| {name} | {spread([s.get(name, (None, None))[0] for s in seeds])} | "
                     f"{spread([s.get(name, (None, None))[1] for s in seeds])} |")
    # Targets of issue 16 on the +AdaBN scores (the reference's protocol).
    atso = mean([s.get("ATSO final", (None, None))[1] for s in seeds])
    adabn = mean([s.get("AdaBN alone", (None, None))[1] for s in seeds])
    source = mean([s.get("source only", (None, None))[0] for s in seeds])
    staged = mean([s.get("staged super-5 -> 11", (None, None))[1] for s in seeds])
    oracle = mean([s.get("oracle (dusk labels)", (None, None))[0] for s in seeds])
    lines += ["", "## Targets", ""]
    if atso is not None and adabn is not None:
        lines.append(f"- ATSO final {100 * atso:.2f} >= AdaBN alone {100 * adabn:.2f} + 3: "
                     f"{'met' if atso >= adabn + 0.03 else 'missed'} ({100 * (atso - adabn):+.2f})")
    if atso is not None and source is not None and oracle is not None:
        share = (atso - source) / (oracle - source)
        lines.append(f"- ATSO {100 * share:.1f} % of the way from source only {100 * source:.2f} "
                     f"to the oracle {100 * oracle:.2f} (target 40 %): {'met' if share >= 0.4 else 'missed'}")
    if atso is not None and staged is not None:
        lines.append(f"- staged {100 * staged:.2f} >= fine ATSO {100 * atso:.2f}: "
                     f"{'met' if staged >= atso else 'missed'}")
    lines += ["", "## PyTorch yardstick (FIDELITY.md, M0 seed 0, on R at 96x128)", ""]
    first = outs[0] if outs else None
    table = load(first, "fine") if first else None
    if table:
        lines += ["Without AdaBN, the pseudo labels' @R per generation (G0..G3):", "",
                  "| schedule | ours | PyTorch |", "|---|---|---|"]
        stage = table["stages"][0]
        for schedule, torch in TORCH_NO_ADABN.items():
            ours = [pct(r["cells"][schedule].get("labelsAtR")) for r in stage["rows"]
                    if r["generation"] != "final" and schedule in r["cells"]]
            lines.append(f"| {schedule} | {', '.join(ours)} | {', '.join(f'{v:.2f}' for v in torch)} |")
        lines.append("")
    table = load(first, "fine-adabn") if first else None
    if table:
        stage = table["stages"][0]
        base = next(b["cell"] for b in table["baselines"] if b["level"] == "fine")

        def gen(schedule, g):
            row = next((r for r in stage["rows"] if r["generation"] == str(g)), None)
            return working(row["cells"].get(schedule), "atRAdaBN") if row else None
        ours = {"M0 + AdaBN": working(base, "atRAdaBN"), "STSO G1": gen("stso", 1),
                "STSO G2": gen("stso", 2), "ATSO G1 fold models": gen("atso", 1),
                "ATSO G2 fold models": gen("atso", 2),
                "ATSO final": working(last_row(stage, "atso"), "atRAdaBN")}
        lines += ["With AdaBN, each model's own prediction on R (@R +AdaBN, 96x128):", "",
                  "| model | ours | PyTorch | difference |", "|---|---:|---:|---:|"]
        for name, torch in TORCH_ADABN.items():
            v = ours.get(name)
            diff = "-" if v is None else f"{100 * v - torch:+.2f}"
            lines.append(f"| {name} | {pct(v)} | {torch:.2f} | {diff} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
