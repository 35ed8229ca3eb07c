"""The transcribed papers, looked up by paper key or table id.

    papers()           {key: Paper} of every transcribed paper
    all_tables()       every PaperTable, paper by paper
    get_table(id)      one table; an unknown id raises KeyError naming the closest ids
    check_paper(key)   KeyError listing the papers if ``key`` is not one

Its own module, between the papers' data and its readers, so that both
``records.py`` (``record(..., table=...)`` checks the id when the record is
written) and ``tables.py`` can look tables up, importing only downward.
"""
from __future__ import annotations

import difflib

from .papers import PAPERS
from .schema import Paper, PaperTable


def papers() -> dict[str, Paper]:
    """Every transcribed paper by key ("dynatok", ...)."""
    return PAPERS


def all_tables() -> list[PaperTable]:
    return [t for p in PAPERS.values() for t in p.tables]


def get_table(table_id: str | PaperTable) -> PaperTable:
    """A table by id; an unknown id raises KeyError naming the closest ids."""
    if isinstance(table_id, PaperTable):
        return table_id
    by_id = {t.id: t for t in all_tables()}
    if table_id not in by_id:
        close = difflib.get_close_matches(str(table_id), list(by_id), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no paper table {table_id!r}{hint} (fourdlib.repro.list_tables() lists all "
                       f"{len(by_id)})")
    return by_id[table_id]


def check_paper(paper: str) -> None:
    if paper not in PAPERS:
        raise KeyError(f"no paper {paper!r}; papers: {', '.join(PAPERS)}")


__all__ = ["papers", "all_tables", "get_table", "check_paper"]
