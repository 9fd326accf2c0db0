#!/usr/bin/env python3
"""Side by side: a run's ATSO generations and the PyTorch reference's, both from the same M0.

Usage: compare_same_m0.py RUN TORCH_ATSO_JSON

RUN is a finished transfer run (table.json with an ATSO schedule, AdaBN before labelling);
TORCH_ATSO_JSON the atso.json that shared/bench/torch_atso_adabn.py wrote from the same M0
(scripts/torch_same_m0.sh runs both steps). Compared per generation, on R at 96x128 with
AdaBN, each model's own prediction (the mean over the fold models of a generation), as
FIDELITY.md reports the reference: ours from table.json's `atWorkingSize.atRAdaBN`, PyTorch's
from the E-dusk score of its models (E-dusk = R = the 62 dusk frames here). Also the gain of
each generation over M0 + AdaBN, the figure that does not depend on M0's seed.
"""
import json
import sys


def pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def ours_rows(table):
    base = next((b["cell"] for b in table["baselines"] if b["level"] == "fine"), None)
    if base is None or "atso" not in table["schedules"]:
        raise SystemExit("the run has no fine-level baseline or no ATSO schedule")
    stage = next(s for s in table["stages"] if any("atso" in r["cells"] for r in s["rows"]))
    rows = {}
    for row in stage["rows"]:
        cell = row["cells"].get("atso")
        if cell is None:
            continue
        working = cell.get("atWorkingSize") or {}
        rows[str(row["generation"])] = working.get("atRAdaBN")
    working = base.get("atWorkingSize") or {}
    rows["0"] = working.get("atRAdaBN")
    return rows


def torch_rows(result):
    rows = {str(r["gen"]): r["E-dusk"]["miou"] for r in result["rows"]}
    rows["final"] = result["final"]["E-dusk"]["miou"]
    return rows


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1] + "/table.json") as f:
        ours = ours_rows(json.load(f))
    with open(sys.argv[2]) as f:
        theirs = torch_rows(json.load(f)["result"])
    order = sorted((g for g in ours if g.isdigit()), key=int) + (["final"] if "final" in ours else [])
    print("| generation | ours @R +AdaBN | PyTorch @R +AdaBN | ours - PyTorch | ours gain | PyTorch gain |")
    print("|---|---:|---:|---:|---:|---:|")
    for g in order:
        a, b = ours.get(g), theirs.get(g)
        diff = None if a is None or b is None else a - b
        gain_a = None if a is None or ours["0"] is None else a - ours["0"]
        gain_b = None if b is None else b - theirs["0"]
        print(f"| {'M0' if g == '0' else g} | {pct(a)} | {pct(b)} | {pct(diff)} | {pct(gain_a)} | {pct(gain_b)} |")
    print("\nmIoU % on R (the 62 dusk frames) at 96x128, AdaBN before predicting; a generation's "
          "cell is the mean of its fold models. Both from the same M0 (exported with `atso-transfer "
          "export`); fold splits and sampling draws differ between the engines.")


if __name__ == "__main__":
    main()
