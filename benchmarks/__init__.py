"""Benchmarks of dealhunter_vectors (``pytest benchmarks/ --benchmark-only --scale small``)."""
