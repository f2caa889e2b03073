#!/usr/bin/env python3
"""Issue 16, rows 4-7: the durable put in process, two engine builds and
their peers in one run.

    scripts/bench-durable-put.py BEFORE_BENCH AFTER_BENCH [--runs 3] [--seconds 2]

BEFORE_BENCH and AFTER_BENCH are `bench` binaries (built with
`--features rocksdb`) of the two commits. Each run goes through, in an order
that rotates per run: the engine of each build (fio's durable 4 KiB write at
QD 1 right after it, `--fio`), RocksDB sync=true and fjall, each a `bench
cell` on the cached dataset with 100 B values and fills from 1, 16 and 64
writers. Ratios are taken within each run, then the median of the runs.
"""

import argparse
import json
import statistics
import subprocess
import sys

CELL = ["cell", "--dataset", "cached", "--value-bytes", "100", "--cache-mib", "16",
        "--mixes", "c", "--distributions", "zipf",
        "--fill-writers", "1", "--fill-writers", "16", "--fill-writers", "64"]


def cell(bench, system, seconds, fio):
    args = [bench, *CELL, "--system", system, "--seconds", str(seconds)]
    args += ["--dir", "/var/tmp/veltrix-bench-put"]
    if fio:
        args.append("--fio")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("ROWS "))
    return json.loads(line[5:])


def fill(rows, writers):
    return next(r for r in rows
                if r["system"] != "fio" and r["mix"] == "fill" and r["concurrency"] == writers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=2)
    a = p.parse_args()
    systems = [("before", a.before, "veltrix"), ("after", a.after, "veltrix"),
               ("rocksdb", a.after, "rocksdb"), ("fjall", a.after, "fjall")]
    figures = {}
    for run in range(a.runs):
        order = systems[run % len(systems):] + systems[:run % len(systems)]
        rows = {}
        for name, bench, system in order:
            print(f"run {run + 1}: {name}", file=sys.stderr, flush=True)
            rows[name] = cell(bench, system, a.seconds, system == "veltrix")
        for build in ("before", "after"):
            ours = rows[build]
            fio_write = next(r for r in ours if r["system"] == "fio" and r["mix"] == "fill")
            w64, w1, w16 = fill(ours, 64), fill(ours, 1), fill(ours, 16)
            best_peer_1 = max(fill(rows["rocksdb"], 1)["ops_per_s"],
                              fill(rows["fjall"], 1)["ops_per_s"])
            got = {
                "64 writers ops/s": w64["ops_per_s"],
                "row 4: 64 writers / RocksDB": w64["ops_per_s"] / fill(rows["rocksdb"], 64)["ops_per_s"],
                "1 writer ops/s": w1["ops_per_s"],
                "row 5: 1 writer / best of fjall, RocksDB": w1["ops_per_s"] / best_peer_1,
                "row 5: 1 writer / fio write+fdatasync": w1["ops_per_s"] / fio_write["ops_per_s"],
                "row 6: write amplification, 64 writers": w64["write_amp"],
                "row 7: P99 16 writers / fio P50": w16["p99_us"] / fio_write["p50_us"],
                "CPU us per put, 64 writers": w64["cpu_s_per_mop"],
                "CPU us per put, 1 writer": w1["cpu_s_per_mop"],
            }
            for k, v in got.items():
                figures.setdefault((build, k), []).append(v)
        for peer in ("rocksdb", "fjall"):
            for w in (1, 64):
                figures.setdefault((peer, f"{w} writers ops/s"), []).append(
                    fill(rows[peer], w)["ops_per_s"])
        print(json.dumps({f"{k[0]} | {k[1]}": v for k, v in figures.items()}), flush=True)
    print("| build | figure | runs | median |\n|---|---|---|---:|")
    for (build, k), v in figures.items():
        runs = " / ".join(f"{x:.2f}" if x < 100 else f"{x:,.0f}" for x in v)
        m = statistics.median(v)
        print(f"| {build} | {k} | {runs} | {m:.2f} |" if m < 100 else f"| {build} | {k} | {runs} | {m:,.0f} |")


if __name__ == "__main__":
    main()
