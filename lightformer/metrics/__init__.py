"""Metrics, each labelled with what it is: thin over sacrebleu, rouge-score and scipy."""
