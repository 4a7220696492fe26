"""Algorithms composed from the learners: context-conditioned TD3 (and later MCAT)."""
