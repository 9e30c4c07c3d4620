"""Training and fine-tuning: recipes (config.py), the loop (loop.py), checkpoints, loss, schedule."""
