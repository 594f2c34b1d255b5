"""Medians per build and workload, and after/before ratios, from compare.sh's JSON lines."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
workloads = ["w1 --concurrency 1 --workflows 1000", "w1 --concurrency 32 --workflows 10000", "w2 --workflows 2000"]


def median(build, workload, key):
    values = [r["result"][key] for r in rows if r["build"] == build and r.get("args") == workload and r.get("result")]
    return statistics.median(values) if values else float("nan")


for build in ["before", "after"]:
    floors = [r["floor"]["commits_per_s"] for r in rows if r["build"] == build and "floor" in r]
    loads = [r["load"] for r in rows if r["build"] == build]
    print(f"{build}: L median {statistics.median(floors)} commits/s, load {min(loads)}-{max(loads)}")
for workload in workloads:
    key = "p50_ms" if workload.startswith("w2") else "steps_per_s"
    before, after = median("before", workload, key), median("after", workload, key)
    print(f"{workload}: {key} {before} -> {after} (after/before {after / before:.2f})")
