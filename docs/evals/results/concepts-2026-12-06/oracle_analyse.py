"""Kept as a record (docs/steering.md, "Ranking by log-probability", 2026-12-06): reads
oracle.py's output and prints the unsteered arm, the shipped steered arm, the ranking's own pick
among the 12 alternatives, and oracles that choose with the judge's words and the unsteered
model's perplexity (upper bounds for a choice among the same samples, not methods).
usage: python oracle_analyse.py ORACLE.json"""
import itertools
import json
import math
import statistics
import sys

with open(sys.argv[1]) as f:
    report = json.load(f)
NONE = {"text": "", "ppl": math.nan, "hit": False}


def med(values):
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def hits(p):
    return [a for a in p["alts"] if a["hit"] and math.isfinite(a["ppl"])]


def fluent(p):
    return min((a for a in p["alts"] if math.isfinite(a["ppl"])), key=lambda a: a["ppl"], default=NONE)


unsteered = med([u["ppl"] for u in report["unsteered"]])
target = 1.5 * unsteered
picks = {
    "steered as shipped (3 alternatives)": lambda p: p["shipped"],
    "the ranking's pick among the 12": lambda p: p["alts"][0] if p["alts"] else NONE,
    "oracle: the first that says the concept, in the ranking's order": (
        lambda p: next((a for a in p["alts"] if a["hit"]), p["alts"][0] if p["alts"] else NONE)),
    "oracle: the most fluent that says the concept": lambda p: min(hits(p), key=lambda a: a["ppl"], default=fluent(p)),
    "oracle: the most fluent, concept or not": fluent,
}
rows = {name: [] for name in [*picks, "oracle: the most that say the concept, median perplexity <= target"]}
for prompts in report["concepts"].values():
    for name, pick in picks.items():
        chosen = [pick(p) for p in prompts]
        rows[name].append((sum(c["hit"] for c in chosen) / len(chosen), med([c["ppl"] for c in chosen])))
    best_hit = [min((a["ppl"] for a in hits(p)), default=None) for p in prompts]
    best_any = [fluent(p)["ppl"] for p in prompts]
    best = (0.0, med(best_any))
    for mask in itertools.product((0, 1), repeat=len(prompts)):
        if any(m and h is None for m, h in zip(mask, best_hit, strict=True)):
            continue
        values = [h if m else b for m, h, b in zip(mask, best_hit, best_any, strict=True)]
        if med(values) <= target and sum(mask) / len(prompts) > best[0]:
            best = (sum(mask) / len(prompts), med(values))
    rows["oracle: the most that say the concept, median perplexity <= target"].append(best)
print(f"{report['prompts']} prompts a concept, {report['n_alt']} alternatives, spread {report['spread']}; "
      f"unsteered perplexity {unsteered:.2f}, +50% = {target:.2f}")
print("| arm | concept rate, median (mean) | perplexity | vs unsteered |\n|---|---:|---:|---:|")
print(f"| unsteered | | {unsteered:.2f} | |")
for name, values in rows.items():
    rates = [r for r, _ in values]
    ppl = med([p for _, p in values])
    rate = f"{statistics.median(rates):.0%} ({statistics.mean(rates):.1%})"
    print(f"| {name} | {rate} | {ppl:.2f} | {ppl / unsteered - 1:+.0%} |")
