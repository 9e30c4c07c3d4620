"""Where a paper-size search spends its time, by kind of operator: the breakdown docs/speed.md
quotes for the throughput rows. Random weights, fixed length, eager decoding, one profiled search
after one unprofiled (profiling adds its own overhead; read the shares, not the totals).

    python workflow/scripts/profile_decode.py --task iwslt14 --batch 32 --threads 2
"""
import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.paper import SIZES
from lightformer.speed.bench import length_batches, paper_size_models, synthetic_sources
from lightformer.speed.fast import prepare_for_inference

KINDS = {"products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
         "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
         "cache copies and reorders": ("aten::copy_", "aten::index_select"),
         "top-k and log-softmax": ("aten::topk", "aten::_log_softmax")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=list(SIZES), default="iwslt14")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--src-len", type=int, default=23)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = length_batches(synthetic_sources(SIZES[args.task]["src_vocab"], args.batch, args.src_len, 0, True),
                         args.batch)[0]
    cfg = SearchConfig(beam=args.beam, max_len_a=0, max_len_b=args.src_len, fixed_length=True)
    print(f"{args.task} paper size, batch {args.batch} x beam {args.beam}, {args.threads} threads, eager: "
          "self time by kind (ms)")
    for name, model in paper_size_models(args.task).items():
        fast = prepare_for_inference(model)
        with torch.inference_mode():
            beam_search(fast, src, cfg)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                beam_search(fast, src, cfg)
        spent = collections.Counter()
        for e in prof.key_averages():
            kind = next((k for k, ops in KINDS.items() if e.key in ops), "other")
            spent[kind] += e.self_cpu_time_total / 1e3
        total = sum(spent.values())
        print(f"  {name}: total {total:,.0f}; " + ", ".join(f"{k} {spent[k]:,.0f} ({spent[k] / total:.0%})"
                                                       for k in [*KINDS, "other"]))


if __name__ == "__main__":
    main()
