#!/usr/bin/env python3
"""Table of Rust/PyTorch ratios from a bench/raw/<stamp>/ directory (torch.jsonl + rust.jsonl),
written by scripts/bench-vs-torch. Standard library only."""

import json
import os
import sys

d = sys.argv[1]
def load(name):
    p = os.path.join(d, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
torch, rust = load("torch.jsonl"), load("rust.jsonl")
rows = []
def add(what, r, t, target=None, note=""):
    # bench.py's primed figure is a difference of two timings and can come out <= 0 when
    # the run is too short for the noise: report it as missing rather than as a ratio.
    if t is not None and t <= 0:
        t, note = None, (note + " torch figure invalid (noise)").strip()
    ratio = r / t if (r and t) else None
    ok = "" if target is None or ratio is None else ("MET" if ratio >= target else "MISSED")
    rows.append((what, r, t, ratio, target, ok, note))
def rget(**kw):
    for m in rust:
        if all(m.get(k) == v for k, v in kw.items()):
            return m
    return None
def rss_mb(m):
    # torch: VmHWM of the timed steps (peak_rss_timed_mb), else the process peak (peak_rss_mb);
    # rust: peak_rss in bytes, of the timed steps
    for key in ("peak_rss_timed_mb", "peak_rss_mb"):
        if m.get(key) is not None:
            return m[key]
    return m["peak_rss"] / 2**20 if m.get("peak_rss") is not None else None
def train_note(r, t):
    f = lambda v: "?" if v is None else f"{v:.0f}"
    g = lambda m, key: "?" if m.get(key) is None else f"{m[key]:.1f}"
    note = (f"RSS MB rust {f(rss_mb(r))} torch {f(rss_mb(t))}; load rust {g(r, 'load_start')}->"
            f"{g(r, 'load_end')} torch {g(t, 'load_start')}->{g(t, 'load_end')}")
    if (r.get("batch"), r.get("steps")) != (t.get("batch"), t.get("steps")):
        note += f"; batch/steps differ: rust {r.get('batch')}/{r.get('steps')} torch {t['batch']}/{t['steps']}"
    return note
for t in torch:
    k = t["kind"]
    if k in ("train_vqvae", "train_prior"):
        # timed optimiser steps (forward, backward, clip, Adam) after the warm-up steps
        r = rget(kind=k, dtype="f32")
        if r:
            if k == "train_vqvae":
                add(f"{k} ({t['config']}) audio s/s", r.get("audio_s_per_wall_s"), t["audio_s_per_wall_s"], 2.0,
                    train_note(r, t))
            else:
                rt = r.get("tokens_per_s", r.get("tokens_per_s_total"))
                add(f"{k} ({t['config']}) tokens/s", rt, t["tokens_per_s"], 2.0, train_note(r, t))
        # --amx-split (TRAIN_SPLIT=1): no target, its products are not f32's numbers
        r = rget(kind=k, dtype="f32-amx-split")
        if r and k == "train_vqvae":
            add(f"{k} ({t['config']}) audio s/s, --amx-split", r.get("audio_s_per_wall_s"),
                t["audio_s_per_wall_s"], None, "not f32's numbers; " + train_note(r, t))
        continue
    if k.startswith("vqvae_"):
        r = rget(kind=k, config=t["config"])
        if r:
            # best of reps on both sides
            tv = t["audio_seconds"] / t["wall_s_min"]
            add(f"{k} ({t['config']}) audio s/s", r["audio_s_per_wall_s"], tv, 2.0)
    elif k.startswith("prior_"):
        cfg, b = t["config"], t["batch"]
        fill = "prime" if t["prime"] else "empty"
        r = rget(kind="prior_sample", config=cfg, batch=b, fill=fill, dtype="f32")
        target = 5.0 if cfg == "mid" else None
        if r:
            add(f"{cfg} b{b} {fill} steps/s", r["steps_per_s"], t["steps_per_s"], target,
                f"roofline {100*r.get('roofline_share', 0):.0f}%")
        # the same step with half-precision or int8 weights (the "best dtype" ratio)
        for dt in ("f16", "bf16", "q8"):
            r = rget(kind="prior_sample", config=cfg, batch=b, fill=fill, dtype=dt)
            if r:
                add(f"{cfg} b{b} {fill} steps/s, {dt} weights", r["steps_per_s"], t["steps_per_s"], target,
                    f"roofline {100*r.get('roofline_share', 0):.0f}%")
        if t["prime"]:
            p = rget(kind="prior_prefill", config=cfg, batch=b, dtype="f32")
            if p:
                # torch: prefill + 1 sampled token; speed = 1/time
                add(f"{cfg} b{b} prefill {t['prime']} (1/s)", 1 / p["wall_s"], 1 / t["prefill_plus1_s"])
print(f"{'measurement':<44} {'rust':>10} {'torch':>10} {'ratio':>8} {'target':>7}  result")
for what, r, t, ratio, target, ok, note in rows:
    rs = f"{r:10.3f}" if r else " " * 10
    ts = f"{t:10.3f}" if t else " " * 10
    rt = f"{ratio:7.2f}x" if ratio else " " * 8
    tg = f"{target:6.1f}x" if target else " " * 7
    print(f"{what:<44} {rs} {ts} {rt} {tg}  {ok} {note}")
print()
print("Rust only: roofline share (target >= 60% at mid b1) and f16/bf16 storage gain")
for m in rust:
    if m["kind"] == "prior_sample":
        base = rget(kind="prior_sample", config=m["config"], batch=m["batch"], fill=m["fill"], dtype="f32")
        gain = m["steps_per_s"] / base["steps_per_s"] if base else float("nan")
        tgt = ""
        if m["config"] == "mid" and m["batch"] == 1 and m["dtype"] == "f32":
            tgt = "MET" if m.get("roofline_share", 0) >= 0.6 else "MISSED"
        print(f"  {m['config']:<6} {m['dtype']:<5} b{m['batch']} {m['fill']:<6}@{m['pos']:<5} "
              f"{m['steps_per_s']:9.2f} steps/s  {m['tokens_per_s_total']:9.2f} tok/s  "
              f"roofline {100*m.get('roofline_share', 0):5.1f}% (read {100*m.get('roofline_share_read', 0):5.1f}%)  "
              f"x{gain:.2f} vs f32  load {m.get('load1', 0):.1f} {tgt}")
    elif m["kind"] == "prior_logits_error":
        print(f"  {m['config']:<6} {m['dtype']:<5} logits vs f32 over {m['tokens']} steps: max |d| "
              f"{m['logits_max_err']:.2e}, rel RMS {m['logits_rel_rms_err']:.2e}, "
              f"argmax agrees {100*m['argmax_agree']:.0f}%")
    elif m["kind"] in ("bandwidth", "prior_prefill"):
        print("  ", {k: v for k, v in m.items() if k not in ("threads",)})
