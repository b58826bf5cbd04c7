"""theorybench."""
