"""4D data: one format (`Sequence4D`), rendering animated meshes into it (`capture`),
dataset folders and a torch `Dataset`; the synthetic generator lives in
`fourdlib.data.synthetic`, real-data loaders beside it."""
from .capture import capture
from .dataset import SequenceDataset, read_manifest, write_manifest
from .sequence import FormatError, Sequence4D, read_sequence

__all__ = ["FormatError", "Sequence4D", "SequenceDataset", "capture",
           "read_manifest", "read_sequence", "write_manifest"]
