"""4D data: one format (`Sequence4D`), a synthetic generator, real-data loaders, datasets."""
from .sequence import FormatError, Sequence4D

__all__ = ["FormatError", "Sequence4D"]
