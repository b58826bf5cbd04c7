"""Tasks: generated data for each study family (nothing is downloaded)."""
