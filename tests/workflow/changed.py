"""Two configs for tests/workflow/test_changed.py: the same task, then its data and grid changed."""


def config(bpe_merges: int, ratios: list[float]) -> dict:
    return {
        "data": {"root": "results/data", "mirror": "results/mirror", "embedded": True},
        "seeds": [1],
        "tasks": {"iwslt14": {
            "dataset": "iwslt14", "bpe_merges": bpe_merges,
            "train": {"recipe": "synthetic", "overrides": {"max_updates": 30, "eval_bleu": False}},
            "finetune": {"recipe": "synthetic", "overrides": {"max_updates": 5, "eval_bleu": False}},
            "generate": {"beam": 1, "metric": "tokenized"},
            "grid": {"ratio": ratios, "share_layers": [1], "init": ["svd"]},
        }},
    }
