"""Graph search ("Transformers Struggle to Learn to Search", Saparov et al., ICLR 2025): one module per
figure; importing the package registers them (see README.md: claim → figure → function → test)."""

from . import accuracy_by_lookahead, lookahead_coverage, path_merging, reach_radius, size_sweep  # noqa: F401
