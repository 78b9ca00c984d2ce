"""Use cases of Round Table: plain async functions over a database session."""
