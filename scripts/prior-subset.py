#!/usr/bin/env python3
"""Balanced subset of a corpus for prior training: 3 files per composer, 7 per drum kit.

Usage: prior-subset.py SRC_CORPUS DST_CORPUS. Audio is symlinked; labels/ is copied so ids stay
the same as in the full corpus (the VQ-VAE is trained on the full corpus)."""
import collections, csv, os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
rows = list(csv.DictReader(open(os.path.join(src, "metadata.csv"), newline="")))
by = collections.defaultdict(list)
for r in rows:
    by[r["artist"]].append(r)
keep = []
for artist, rs in sorted(by.items()):
    keep += rs[: 7 if rs[0]["genres"] == "breakbeat" else 3]
with open(os.path.join(dst, "metadata.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(keep)
for r in keep:
    p = os.path.join(dst, r["path"])
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if not os.path.lexists(p):
        os.symlink(os.path.abspath(os.path.join(src, r["path"])), p)
if os.path.exists(os.path.join(dst, "labels")):
    shutil.rmtree(os.path.join(dst, "labels"))
shutil.copytree(os.path.join(src, "labels"), os.path.join(dst, "labels"))
print(f"{len(keep)} files in {dst}")
