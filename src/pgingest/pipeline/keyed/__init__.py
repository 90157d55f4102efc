"""Keyed loads (stage 5 of a run): routing each key to one worker, scheduling files that share
keys, and what the modes add to a run (upsert, merge, ``--delete-missing``, replace's swap)."""
