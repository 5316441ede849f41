"""canasta: the distribution of rationed and subsidised goods and social benefits."""

__version__ = "0.1.0"
