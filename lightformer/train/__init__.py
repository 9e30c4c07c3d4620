"""Training and fine-tuning: recipes (recipes.py), the loop (loop.py), a run directory's
checkpoints and resumption (run_dir.py), loss, schedule, the training benchmark and its cost."""
