"""fourdlib.repro: result records, the papers' tables as data, and paper-vs-ours tables.

    repro.record(metrics, scale=..., seed=..., data=..., table=...)  # end of a notebook
    repro.load_records(run_dir)                                      # every record, a DataFrame
    repro.list_tables()                                              # transcribed paper tables
    repro.style(repro.side_by_side("dynatok/object_level", ours, scale=..., data=...))

See records.py (where records go, what they hold) and tables.py (table schema).
"""
from .records import (NOTEBOOK_ENV, OUTPUT_DIR_ENV, RECORD_DIR_ENV, RECORD_SUFFIX, Timer, describe_data,
                      git_commit, load_records, output_dir, read_record, record, timer)
from .tables import (Column, Paper, PaperTable, all_tables, get_table, list_tables, ours_label,
                     paper_values, list_papers, side_by_side, side_by_side_records, style)

__all__ = ["record", "timer", "Timer", "load_records", "read_record", "output_dir", "git_commit",
           "describe_data", "RECORD_DIR_ENV", "NOTEBOOK_ENV", "OUTPUT_DIR_ENV", "RECORD_SUFFIX",
           "Column", "Paper", "PaperTable", "list_papers", "all_tables", "list_tables", "get_table",
           "paper_values", "side_by_side", "side_by_side_records", "ours_label", "style"]
