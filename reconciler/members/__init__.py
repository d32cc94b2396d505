"""The member model: identity rules defined once, and the DuckDB engine behind large audiences."""
