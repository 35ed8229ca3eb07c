"""C4G, "Learning Global Motion with Compact Gaussians for Feed-Forward 4D Reconstruction".

../shared/papers/c4g_query_gaussians.md is the project page's text: it has a
"Quantitative Results" heading but the results are figures, with no number in
the text. There is therefore no table to transcribe, and no paper column for
our C4G numbers to sit beside.
"""
from ..schema import Paper

PAPER = Paper(
    key="c4g",
    title="Learning Global Motion with Compact Gaussians for Feed-Forward 4D Reconstruction (C4G)",
    venue="2026 (project page)",
    file="c4g_query_gaussians.md",
    tables=(),
    notes="No numbers in the stored text (its Quantitative Results are images): nothing to transcribe.",
)
