"""Assets grouped by domain; each module is one stage of the graph."""
