"""The five papers' tables, one module per paper (transcribed from ../shared/papers/*.md).

``PAPERS`` maps a paper key to its :class:`fourdlib.repro.schema.Paper`. The modules
import only ``schema``; read the tables through ``fourdlib.repro.list_tables()``,
``get_table()`` and ``paper_values()``.
"""
from . import any4d, c4g, com4d, dynatok, native4d_vae

PAPERS = {p.key: p for p in (dynatok.PAPER, native4d_vae.PAPER, com4d.PAPER, any4d.PAPER, c4g.PAPER)}
