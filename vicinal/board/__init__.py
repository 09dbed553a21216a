"""Leaderboards, comparisons and the report, rendered from result files only (:mod:`vicinal.store`):
building the boards (:mod:`.boards`, :mod:`.grouping`), metrics derived across a suite (:mod:`.derived`,
:mod:`.relative`), paired statistics (:mod:`.paired`, :mod:`.compare`) and the output formats
(:mod:`.formats`, :mod:`.html`, :mod:`.report`). Never imports torch or anything that trains."""
