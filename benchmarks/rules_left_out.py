"""Leave-rules-out: how right the parser is on node classes it has no rule for.

The corpus (50 real workflows with hand-read expected values) is parsed with whole families of
rules removed (cloud API nodes, conditioning helpers, resolution/seed/switch helpers, loaders,
samplers), one family at a time and issue 8's three together, and every expected fact is scored
right, missing (nothing recorded: allowed) or wrong (another value recorded: never allowed).
Targets: with every rule, 100% right; with API + conditioning + helper rules removed, at least
90% right and 0 wrong; 0 wrong in every row.

Two schema sources are measured: everything a parse outside ComfyUI has (the core snapshot shipped
with the pack, the UI workflow in the file, the prompt's widget values), and the file's own graphs
alone (a custom node no snapshot knows: only what the frontend saved says what its inputs and
outputs are, and the prompt's values say what type its widgets are).

    python benchmarks/rules_left_out.py [--wrong]     # --wrong lists every wrong value
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from corpus_score import ACCEPTANCE, FAMILIES, Score, rules_without, score

from comfyui_provenance.metadata.parser import schemas

TARGET = 0.90


def table(label: str, show_wrong: bool) -> bool:
    print(f"\n{label}")
    ok = True
    for families in ([], *([f] for f in FAMILIES), list(ACCEPTANCE)):
        started = time.perf_counter()
        result: Score = score(rules_without(families))
        name = "+".join(families) or "none"
        want = 1.0 if not families else TARGET if families == list(ACCEPTANCE) else None
        verdict = "" if want is None else ("PASS" if result.ratio >= want and not result.wrong else "MISS")
        verdict = verdict or ("PASS" if not result.wrong else "MISS")
        ok = ok and verdict == "PASS"
        target = f"target {want:.0%}, 0 wrong" if want is not None else "target 0 wrong"
        print(f"  rules removed: {name:<26} {result.line():<44} {target:<22} {verdict}"
              f"  ({time.perf_counter() - started:.1f} s)")  # fmt: skip
        for problem in result.wrong if show_wrong else result.wrong[:5]:
            print(f"      WRONG {problem}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wrong", action="store_true", help="list every wrong value")
    args = parser.parse_args()
    ok = table("schemas: core snapshot + the file's UI workflow (a parse outside ComfyUI)", args.wrong)
    original = schemas.bundled
    schemas.bundled = schemas.SchemaSet  # type: ignore[assignment]
    try:
        label = "schemas: the file's own graphs only, UI workflow + prompt values (classes no snapshot knows)"
        ok = table(label, args.wrong) and ok
    finally:
        schemas.bundled = original  # type: ignore[assignment]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
