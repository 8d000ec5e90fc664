"""Scratch harness kept as the record of docs/steering.md's 2026-12-06 rows (not part of the package):
the steered arm of `steer eval --concepts` only, concepts rebuilt per arm with other neutral sentences / templates.
Run from the repository root with the venv's python.
usage: python docs/evals/results/concepts-2026-12-06/harness.py OUT.json ARMS -- <steer eval args>
arms: now | mix (12 narrative + 12 expository) | both (24 + 24) | both2t (24+24, first 2 templates) | expo
      | rows1:L:H (alternatives pushed at 1, L, H times the strength; H = 2 - L; the tuning arms
      1.25:1:0.75 and 0.8:1:1.2 ran on a first version that set any three multiples) | any of them @S"""
import json
import statistics
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from neutral_expository import EXPOSITORY

from tinymorph.commands import steer as st
from tinymorph.domain import DEFAULT_CONCEPT_STRENGTH, SteeringSpec, SteeringTerm
from tinymorph.engine import concepts as cm
from tinymorph.evals.concepts import read_concepts, repetition, shows
from tinymorph.evals.steer import first, median, score_text, shown_suggestion

out_path, arms = sys.argv[1], sys.argv[2].split(",")
argv = sys.argv[sys.argv.index("--") + 1:]
NARR, TEMPL = cm.NEUTRAL_SENTENCES, cm.TEMPLATES
VARIANTS = {
    "now": (NARR, TEMPL),
    "mix": (NARR[::2] + EXPOSITORY[::2], TEMPL),
    "both": (NARR + EXPOSITORY, TEMPL),
    "both2t": (NARR + EXPOSITORY, TEMPL[:2]),
    "expo": (EXPOSITORY, TEMPL),
}

def run(args, gen, data, prompts, decoding, console):
    cases = read_concepts(args.concepts)
    contexts = [gen.context_ids(p.rstrip(" ")) for p in prompts]
    report = {"argv": argv, "arms": {}}
    for arm in arms:
        name, _, s = arm.partition("@")
        strength = float(s) if s else DEFAULT_CONCEPT_STRENGTH
        if name.startswith("rows"):
            rows = [float(x) for x in name[4:].split(":")]
            gen.concept_spread = round(rows[2] - 1, 6)
            assert rows[0] == 1 and abs(rows[1] - (1 - gen.concept_spread)) < 1e-6
            cm.NEUTRAL_SENTENCES, cm.TEMPLATES = VARIANTS["now"]
        else:
            gen.concept_spread = 0.0
            cm.NEUTRAL_SENTENCES, cm.TEMPLATES = VARIANTS[name]
        t0 = time.time()
        maker = cm.ConceptMaker(gen.lm)
        maker.baseline()
        tb = time.time()
        concepts = {c.name: maker.make(c.query, gen.sae) for c in cases}
        make_s = (time.time() - tb) / len(cases)
        per = {}
        for case in cases:
            c = concepts[case.name]
            term = SteeringTerm(strength, direction=tuple(c.direction.tolist()), label=c.name, concept=c.name)
            spec = SteeringSpec((term,))
            samples = [first(shown_suggestion(gen, p, spec, decoding, k)) for k, p in enumerate(prompts)]
            ppl = [score_text(gen.lm, ids, t).perplexity for ids, t in zip(contexts, samples, strict=True)]
            hits = [shows(t, case.words) for t in samples]
            per[case.name] = {"rate": sum(hits) / len(hits), "ppl": median(ppl), "ppls": ppl, "shift": c.shift,
                              "rep": repetition(samples), "samples": samples,
                              "words": [len(t.split()) for t in samples]}
        rate = statistics.median(v["rate"] for v in per.values())
        mean = statistics.mean(v["rate"] for v in per.values())
        ppl = median([v["ppl"] for v in per.values()])
        words = statistics.mean(w for v in per.values() for w in v["words"])
        print(f"{arm}: rate {rate:.0%} (mean {mean:.1%}) ppl {ppl:.2f} words {words:.1f} "
              f"make {make_s * 1000:.0f} ms ({time.time() - t0:.0f}s)", flush=True)
        report["arms"][arm] = {"rate": rate, "mean": mean, "ppl": ppl, "words": words, "make_ms": make_s * 1000,
                               "per": per}
        with open(out_path, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
    return 0

st.run_concepts = run
sys.exit(st.main(argv))
