"""Analysis: aggregation of scores, statistics, learning diagnostics, plots and the report."""
