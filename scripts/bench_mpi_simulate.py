#!/usr/bin/env python3
"""Scale-out on paper: how many ranks an ATSO job graph keeps busy, and the wall time on
8-64 ranks combining job parallelism (the farm) with data parallelism (ranks per training job).

The job graph is the plan's (Sources/Transfer/TransferPlan.swift, ATSO with AdaBN before
labeling when the run used it): the source model; per generation t and fold j an AdaBN copy of
model j of t - 1 on fold j and its pseudo labels of fold j; per fold k a student fine-tuned from M0 on the labels of
every other fold; an evaluation of every model; finally K AdaBN copies and label sets and one
model fine-tuned on all folds.

Job durations come from a real run: `--run RUN` reads RUN/farm.jsonl when the run was made with
mpirun (every job's measured seconds), else the modification times of RUN/steps/*.json of a
one-process run (one job after the other). AdaBN and labeling scale with the units of a fold
(|R| / K); training and evaluation do not depend on K.

Data parallelism: a training job on G ranks takes `d * (f / G + (1 - f)) + c(G)` where `f` is
the parallel fraction of a step and c(G) the reductions (one binomial tree up and down per
step for the gradients, `bn` batch-norm layers with three small reductions each), with
`--alpha` seconds latency and `--bandwidth` bytes/s per message. `--efficiency-2` (the measured
1 -> 2 rank speedup of `train`, e.g. 1.8) sets f when given. Evaluation, AdaBN and labeling
split over images across G ranks with the same model. The farm hands ready jobs to free rank
groups in plan order (as JobFarm does).

Usage: scripts/bench_mpi_simulate.py --run RUN [--folds 2,4,8] [--generations 3]
          [--ranks 1,8,16,32,64] [--groups 1,2,4,8] [--steps S] [--parameters P]
"""

import argparse
import json
import math
import os
import sys


def durations_from_run(run):
    """Seconds per job kind (train-source, finetune, adabn, label, eval) of a real run."""
    kinds = {}
    farm = os.path.join(run, "farm.jsonl")
    if os.path.exists(farm):
        with open(farm) as f:
            for line in f:
                entry = json.loads(line)
                if "seconds" in entry:
                    kinds.setdefault(kind(entry["job"]), []).append(entry["seconds"])
    else:
        steps = os.path.join(run, "steps")
        records = sorted(
            (os.path.getmtime(os.path.join(steps, name)), name[: -len(".json")])
            for name in os.listdir(steps) if name.endswith(".json"))
        previous = os.path.getmtime(os.path.join(run, "folds.json"))
        for mtime, job in records:
            kinds.setdefault(kind(job), []).append(mtime - previous)
            previous = mtime
    with open(os.path.join(run, "configuration.json")) as f:
        configuration = json.load(f)
    folds = configuration.get("folds", 2)
    return {k: sum(v) / len(v) for k, v in kinds.items()}, folds, kinds


def kind(job):
    for prefix in ("train-", "finetune-", "adabn-", "label-", "eval-"):
        if job.startswith(prefix):
            return prefix[:-1]
    return "other"


def atso_graph(folds, generations, adabn):
    """(id, kind, dependencies) in plan order, as PlanBuilder.planSchedule plans ATSO."""
    jobs = [("train-source", "train", []), ("eval-m0", "eval", ["train-source"])]
    models = ["train-source"] * folds
    for t in range(1, generations + 2):
        final = t == generations + 1
        prefix = "final" if final else f"g{t}"
        labels = []
        for j in range(folds):
            adabn_job = f"adabn-{prefix}-fold{j + 1}"
            label = f"label-{prefix}-fold{j + 1}"
            if adabn:
                jobs.append((adabn_job, "adabn", [models[j]]))
            jobs.append((label, "label", [adabn_job if adabn else models[j]]))
            labels.append(label)
        if final:
            jobs.append(("finetune-final", "finetune", ["train-source"] + labels))
            jobs.append(("eval-final", "eval", ["finetune-final"] + labels))
            break
        students = []
        for k in range(folds):
            student = f"finetune-{prefix}-m{k + 1}"
            training = [l for i, l in enumerate(labels) if i != k]
            jobs.append((student, "finetune", ["train-source"] + training))
            jobs.append((f"eval-{prefix}-m{k + 1}", "eval", [student] + training))
            students.append(student)
        models = students
    return jobs


def find_key(value, names):
    """The first value under any of `names` anywhere in a decoded JSON document."""
    if isinstance(value, dict):
        for name in names:
            if name in value:
                return value[name]
        for item in value.values():
            found = find_key(item, names)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = find_key(item, names)
            if found is not None:
                return found
    return None


def job_seconds(kind_name, base, folds, base_folds):
    if kind_name == "adabn" or kind_name == "label":
        return base[kind_name] * base_folds / folds
    return base[kind_name]


def data_parallel(seconds, kind_name, group, model):
    """Wall seconds of a job of `seconds` (one rank) on `group` ranks."""
    if group == 1:
        return seconds
    if kind_name in ("train", "finetune"):
        f = model["fraction"]
        steps = model["steps"][kind_name]
        rounds = 2 * math.ceil(math.log2(group))
        gradient = rounds * (model["alpha"] + 4 * model["parameters"] / model["bandwidth"])
        norms = model["bn"] * 3 * rounds * model["alpha"]
        return seconds * (f / group + (1 - f)) + steps * (gradient + norms)
    # Evaluation, AdaBN, labeling: images split over the group, one model load each.
    return seconds / group + model["alpha"] * 2 * math.ceil(math.log2(group))


def simulate(jobs, seconds, ranks, group, model):
    """List scheduling as JobFarm does: ready jobs in plan order to free groups of ranks."""
    groups = max(1, ranks // group)
    free_at = [0.0] * groups
    finish = {}
    pending = list(jobs)
    busy = []  # (start, end)
    clock = 0.0
    while pending:
        ready = [j for j in pending if all(d in finish and finish[d] <= clock for d in j[2])]
        idle = [g for g in range(groups) if free_at[g] <= clock]
        if ready and idle:
            for g, job in zip(idle, ready):
                end = clock + data_parallel(seconds[job[0]], job[1], group, model)
                free_at[g] = end
                finish[job[0]] = end
                busy.append((clock, end))
                pending.remove(job)
            continue
        events = [t for t in free_at if t > clock] + [t for t in finish.values() if t > clock]
        clock = min(events)
    makespan = max(finish.values())
    return makespan, busy


def width(jobs, seconds):
    """With unlimited ranks: the peak number of concurrent jobs, total work / critical path."""
    makespan, busy = simulate(jobs, seconds, len(jobs), 1, None)
    points = sorted([(s, 1) for s, _ in busy] + [(e, -1) for _, e in busy],
                    key=lambda p: (p[0], p[1]))
    peak = current = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    work = sum(seconds[j[0]] for j in jobs)
    return peak, work / makespan, makespan, work


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--folds", default="2,4,8")
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--ranks", default="1,8,16,32,64")
    parser.add_argument("--groups", default="1,2,4,8")
    parser.add_argument("--source-steps", type=float, default=None,
                        help="SGD steps of the source model (default: the run's)")
    parser.add_argument("--finetune-steps", type=float, default=None,
                        help="SGD steps of a fine-tuning (default: the run's)")
    parser.add_argument("--parameters", type=float, default=488307)
    parser.add_argument("--bn", type=int, default=14, help="batch-norm layers")
    parser.add_argument("--alpha", type=float, default=50e-6)
    parser.add_argument("--bandwidth", type=float, default=1.25e9)
    parser.add_argument("--fraction", type=float, default=0.95)
    parser.add_argument("--efficiency-2", type=float, default=None,
                        help="measured train speedup on 2 ranks; sets the parallel fraction")
    args = parser.parse_args()

    base, base_folds, samples = durations_from_run(args.run)
    with open(os.path.join(args.run, "configuration.json")) as f:
        configuration = json.load(f)
    fraction = args.fraction
    if args.efficiency_2:
        fraction = min(1.0, 2 * (1 - 1 / args.efficiency_2))
    source_steps = args.source_steps or float(
        find_key(configuration, ["source-iterations", "sourceIterations"]) or 100)
    finetune_steps = args.finetune_steps or float(
        find_key(configuration, ["finetune-iterations", "finetuneIterations"]) or 100)
    batch = int(find_key(configuration, ["batch"]) or 8)
    model = dict(fraction=fraction, steps={"train": source_steps, "finetune": finetune_steps},
                 parameters=args.parameters, bn=args.bn, alpha=args.alpha,
                 bandwidth=args.bandwidth)

    print(f"durations from {args.run} (K = {base_folds}), seconds per job:")
    for k in sorted(samples):
        print(f"  {k:10s} mean {base[k]:8.1f}  ({len(samples[k])} jobs)")
    print(f"data-parallel model: parallel fraction {fraction:.3f}, {source_steps:.0f} source / "
          f"{finetune_steps:.0f} fine-tuning steps, batch {batch} (at most {batch} ranks a job), "
          f"{args.parameters:.0f} parameters, alpha {args.alpha * 1e6:.0f} us, "
          f"{args.bandwidth / 1e9:.2f} GB/s")
    print()
    ranks = [int(r) for r in args.ranks.split(",")]
    groups = [int(g) for g in args.groups.split(",") if int(g) <= batch]
    print("| K | T | jobs | peak concurrent jobs | work / critical path | one rank (s) | "
          + " | ".join(f"{r} ranks: best s (G)" for r in ranks) + " |")
    print("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(ranks))
    for folds in [int(k) for k in args.folds.split(",")]:
        jobs = atso_graph(folds, args.generations, "adabn" in base)
        seconds = {j[0]: job_seconds(j[1], base, folds, base_folds) for j in jobs}
        peak, average, critical, work = width(jobs, seconds)
        cells = []
        for r in ranks:
            best = min((simulate(jobs, seconds, r, g, model)[0], g) for g in groups if g <= r)
            cells.append(f"{best[0]:.0f} ({best[1]})")
        print(f"| {folds} | {args.generations} | {len(jobs)} | {peak} | {average:.2f} | "
              f"{work:.0f} | " + " | ".join(cells) + " |")
    print()
    print("Job parallelism alone (G = 1): wall seconds and mean busy ranks (work / wall time)")
    print()
    print("| K | " + " | ".join(f"{r} ranks" for r in ranks) + " |")
    print("|---:|" + "---:|" * len(ranks))
    for folds in [int(k) for k in args.folds.split(",")]:
        jobs = atso_graph(folds, args.generations, "adabn" in base)
        seconds = {j[0]: job_seconds(j[1], base, folds, base_folds) for j in jobs}
        work = sum(seconds.values())
        cells = []
        for r in ranks:
            wall = simulate(jobs, seconds, r, 1, model)[0]
            cells.append(f"{wall:.0f} s, {work / wall:.2f} busy")
        print(f"| {folds} | " + " | ".join(cells) + " |")
    print()
    print("G = ranks per job (data parallelism inside a job); the farm runs ranks / G jobs at "
          "once. Critical path with unlimited ranks and G = 1 is 'one rank' / 'work / "
          "critical path'.")


if __name__ == "__main__":
    sys.exit(main())
