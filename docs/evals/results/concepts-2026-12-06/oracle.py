"""How low can a pushed-and-selected suggestion's perplexity go at a given concept rate?
For each concept and prompt: the unsteered suggestion as the editor shows it, the steered one as shipped
(3 alternatives, spread 0.4), and 12 alternatives pushed at 0.2x..1.8x the strength (row 0 greedy at 1x),
every alternative scored by the unsteered model. An oracle then picks with the judge's words (an upper
bound for any ranking over these samples, not a method).
Kept as the record of docs/steering.md, "Ranking by log-probability" (2026-12-06); not part of the package.
Run from the repository root with the venv's python:
python docs/evals/results/concepts-2026-12-06/oracle.py OUT.json 12 0.8 -- eval ../shared/corpus-modern \\
    --exclude SOURCES.md --concepts docs/evals/concepts-validate.toml --prompts 10"""
import dataclasses
import json
import sys
import time

from tinymorph.commands import steer as st
from tinymorph.domain import DEFAULT_CONCEPT_STRENGTH, SteeringSpec, SteeringTerm
from tinymorph.engine import concepts as cm
from tinymorph.evals.concepts import read_concepts, shows
from tinymorph.evals.steer import first, score_text, shown_suggestion

out_path, n_alt, spread = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
argv = sys.argv[sys.argv.index("--") + 1:]


def run(args, gen, data, prompts, decoding, console):
    cases = read_concepts(args.concepts)
    contexts = [gen.context_ids(p.rstrip(" ")) for p in prompts]
    maker = cm.ConceptMaker(gen.lm)
    maker.baseline()
    wide = dataclasses.replace(decoding, alternatives=n_alt)
    t0 = time.time()
    unsteered = [first(shown_suggestion(gen, p, SteeringSpec(), decoding, k)) for k, p in enumerate(prompts)]
    report = {"argv": argv, "n_alt": n_alt, "spread": spread, "prompts": len(prompts),
              "unsteered": [{"text": t, "ppl": score_text(gen.lm, ids, t).perplexity}
                            for ids, t in zip(contexts, unsteered, strict=True)],
              "concepts": {}}
    print(f"unsteered done ({time.time() - t0:.0f}s)", flush=True)
    for case in cases:
        c = maker.make(case.query, gen.sae)
        term = SteeringTerm(DEFAULT_CONCEPT_STRENGTH, direction=tuple(c.direction.tolist()), label=c.name,
                            concept=c.name)
        spec = SteeringSpec((term,))
        rows = []
        for k, (p, ids) in enumerate(zip(prompts, contexts, strict=True)):
            gen.concept_spread = 0.4
            shipped = first(shown_suggestion(gen, p, spec, decoding, k))
            gen.concept_spread = spread
            alts = shown_suggestion(gen, p, spec, wide, k).alternatives
            gen.concept_spread = 0.4
            rows.append({
                "shipped": {"text": shipped, "ppl": score_text(gen.lm, ids, shipped).perplexity,
                            "hit": shows(shipped, case.words)},
                "alts": [{"text": a, "ppl": score_text(gen.lm, ids, a).perplexity, "hit": shows(a, case.words)}
                         for a in alts],
            })
        report["concepts"][case.name] = rows
        print(f"{case.name}: shipped {sum(r['shipped']['hit'] for r in rows)}/{len(rows)}, "
              f"any alt {sum(any(a['hit'] for a in r['alts']) for r in rows)}/{len(rows)} "
              f"({time.time() - t0:.0f}s)", flush=True)
        with open(out_path, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
    return 0


st.run_concepts = run
sys.exit(st.main(argv))
