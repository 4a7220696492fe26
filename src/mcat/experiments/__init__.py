"""Experiments of the paper built from the library: the fixed-dataset transfer (Table 1)."""
