"""The package version, in a module of its own so that any floor can read it without a circle.

May import: nothing of ours.
"""

__version__ = "0.1.0"
