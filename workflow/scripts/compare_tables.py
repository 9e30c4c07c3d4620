"""Are two runs' tables the same, apart from timings and provenance? For refactors: run the smoke
config at the old and the new commit, then

    python workflow/scripts/compare_tables.py OLD/results/tables NEW/results/tables

Every column both tables have is compared as text, except measured times, speedups (columns, and
paper_comparison's speed claims) and the provenance columns (commit, hashes, versions, the command); new and dropped columns are listed.
Exit status 1 when a compared value differs."""
import sys
from pathlib import Path

import pandas as pd

old, new = Path(sys.argv[1]), Path(sys.argv[2])
VOLATILE = ("commit", "config_sha256", "data_manifest_sha256", "torch", "cuda", "measured", "command", "device_name",
            "_ms", "speedup", "per_s", "seconds", "wall", "sent_s", "tok_s", "provenance", "threads", "tokens_per_run",
            "flops_to_target")  # FLOPs per token read back from timed windows (TFLOP/s over tok/s): equal to rounding
ok = True
for a in sorted(old.glob("*.csv")):
    b = new / a.name
    if not b.exists():
        print(f"{a.name}: missing after"); ok = False; continue
    x, y = pd.read_csv(a), pd.read_csv(b)
    added = sorted(set(y.columns) - set(x.columns))
    dropped = sorted(set(x.columns) - set(y.columns))
    keep = [c for c in x.columns if c in y.columns and not any(v in c for v in VOLATILE)]
    x, y = x[keep].reset_index(drop=True).astype(str), y[keep].reset_index(drop=True).astype(str)
    if "claim" in x and "ours" in x and x.shape == y.shape:  # paper_comparison: a speed claim's value is a timing
        timed = x["claim"].astype(str).str.startswith("speedup")
        x.loc[timed, "ours"] = y.loc[timed, "ours"] = "(timing)"
    same = x.shape == y.shape and x.astype(str).equals(y.astype(str))
    print(f"{a.name}: {'identical' if same else 'DIFFERENT'} over {len(keep)} columns x {len(x)} rows"
          + (f"; new columns {added}" if added else "") + (f"; dropped {dropped}" if dropped else ""))
    if not same:
        ok = False
        diff = (x.astype(str) != y.astype(str))
        for c in diff.columns[diff.any()]:
            print("   ", c, list(x[c][diff[c]])[:3], "->", list(y[c][diff[c]])[:3])
sys.exit(0 if ok else 1)
