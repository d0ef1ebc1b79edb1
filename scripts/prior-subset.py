#!/usr/bin/env python3
"""Balanced, shortened subset of a corpus for prior training.

Usage: prior-subset.py SRC_CORPUS DST_CORPUS [SECONDS]
3 files per composer cut to their first SECONDS (default 25; offsets are kept true in the
metadata), 5 renders per drum kit. Encoding the whole corpus with the VQ-VAE on 2 cores costs
more time than the extra data gives a small prior. labels/ is copied so ids match the full corpus."""
import collections, csv, os, shutil, subprocess, sys

src, dst = sys.argv[1], sys.argv[2]
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 25.0
os.makedirs(dst, exist_ok=True)
rows = list(csv.DictReader(open(os.path.join(src, "metadata.csv"), newline="")))
by = collections.defaultdict(list)
for r in rows:
    by[r["artist"]].append(r)
keep = []
for artist, rs in sorted(by.items()):
    keep += rs[: 5 if rs[0]["genres"] == "breakbeat" else 3]
for r in keep:
    out = os.path.join(dst, r["path"])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.lexists(out):
        os.remove(out)
    subprocess.run(["sox", os.path.join(src, r["path"]), out, "trim", "0", str(secs)], check=True)
with open(os.path.join(dst, "metadata.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(keep)
if os.path.exists(os.path.join(dst, "labels")):
    shutil.rmtree(os.path.join(dst, "labels"))
shutil.copytree(os.path.join(src, "labels"), os.path.join(dst, "labels"))
print(f"{len(keep)} files in {dst}")
