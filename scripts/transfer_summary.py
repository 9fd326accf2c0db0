#!/usr/bin/env python3
"""Summarises transfer run directories (metrics.jsonl) into one markdown table.

Usage: transfer_summary.py LABEL=RUN_DIR [LABEL=RUN_DIR ...]
Each row: a run, a stage and a schedule; columns: mIoU @R per generation (0 = the stage's
initial model; ATSO cells average the K fold models), the final model's @R and @E (%).
"""
import json
import sys


def rows(label, directory):
    records = [json.loads(line) for line in open(f"{directory}/metrics.jsonl")]
    keys = []
    for r in records:
        key = (r["stage"], r["level"], r["schedule"])
        if key not in keys:
            keys.append(key)
    for stage, level, schedule in keys:
        mine = [r for r in records
                if (r["stage"], r["level"], r["schedule"]) == (stage, level, schedule)]
        generations = {}
        for r in mine:
            if r.get("generation") is not None:
                generations.setdefault(r["generation"], []).append(r["atR"])
        finals = [r for r in mine if r.get("generation") is None]
        if finals:
            final = finals[-1]
        else:
            last = max(r["generation"] for r in mine)
            final = [r for r in mine if r["generation"] == last][-1]
        yield label, stage, level, schedule, generations, final


def main():
    print("| run | stage | level | schedule | @R by generation (0, 1, ...) | final @R | final @E |")
    print("|---|---|---|---|---|---:|---:|")
    for argument in sys.argv[1:]:
        label, directory = argument.split("=", 1)
        for label, stage, level, schedule, generations, final in rows(label, directory):
            cells = ", ".join(
                f"{100 * sum(v) / len(v):.2f}" for _, v in sorted(generations.items()))
            print(f"| {label} | {stage} | {level} | {schedule} | {cells or '-'} | "
                  f"{100 * final['atR']:.2f} | {100 * final['atE']:.2f} |")


if __name__ == "__main__":
    main()
