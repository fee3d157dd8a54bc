"""AMC - Automated Model Creator."""

__version__ = "0.1.0"
