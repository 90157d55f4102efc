"""Evolving the target (stage 3 of a run): all the DDL of a load, the table created or fitted
to a file before it is written and widened when a batch brings a wider value."""
