"""Writing (stage 4 of a run): a file's batches read, shaped and encoded into payloads, COPYed
one transaction each, and a batch the server refused recovered."""
