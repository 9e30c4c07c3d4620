"""GLUE classification: BERT (or a tiny BERT for the smoke run) fine-tuned per task, compressed
with the same LightFormer machinery, fine-tuned again, scored on dev."""
