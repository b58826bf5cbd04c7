"""Exact constructions: weights computed from a program or a closed form, loaded into the toy transformer."""
