"""Study families: each module here registers its experiments and figures (see theorybench.registry)."""
