"""fourdlib.repro: result records, the papers' tables as data, and paper-vs-ours tables.

    repro.record(metrics, scale=..., seed=..., data=..., table=...)  # end of a notebook
    repro.load_records(run_dir)                                      # every record, a DataFrame
    repro.list_tables()                                              # transcribed paper tables
    repro.style(repro.side_by_side("dynatok/object_level", ours, scale=..., data=...))

Modules, each importing only those below it:
    tables.py     reading the tables, side-by-side tables     -> records, registry, schema, frames
    records.py    writing and reading result records          -> registry, fourdlib.provenance, fourdlib.io
    registry.py   the papers by key, tables by id             -> papers, schema
    papers/       the transcribed tables, one module a paper  -> schema
    schema.py     Column, grid, PaperTable, Paper, ↑/↓        -> frames
    frames.py     a table as a DataFrame, style()             (nothing from fourdlib)
Commit, device and versions come from ``fourdlib.provenance``; ``git_commit`` is
re-exported here.
"""
from ..provenance import git_commit
from .records import (NOTEBOOK_ENV, OUTPUT_DIR_ENV, RECORD_DIR_ENV, RECORD_SUFFIX, Timer, describe_data,
                      load_records, output_dir, read_record, record, timer)
from .schema import Column, Paper, PaperTable
from .tables import (all_tables, get_table, list_papers, list_tables, ours_label, paper_values, side_by_side,
                     side_by_side_records, style)

__all__ = ["record", "timer", "Timer", "load_records", "read_record", "output_dir", "git_commit",
           "describe_data", "RECORD_DIR_ENV", "NOTEBOOK_ENV", "OUTPUT_DIR_ENV", "RECORD_SUFFIX",
           "Column", "Paper", "PaperTable", "list_papers", "all_tables", "list_tables", "get_table",
           "paper_values", "side_by_side", "side_by_side_records", "ours_label", "style"]
