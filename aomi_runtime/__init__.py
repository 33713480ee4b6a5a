"""aomi-runtime: the Aomi agent runtime as actors on Ray."""

__version__ = "0.1.0"
