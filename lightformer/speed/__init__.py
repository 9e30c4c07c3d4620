"""Speed: the inference path (fast.py) and the benchmark protocols (bench.py)."""
