"""The ``pgingest`` command line: a thin layer over the library."""

from pgingest.pipeline.memory import limit_resident_memory

# The command streams files for its whole life: tune the allocators before Arrow or the
# driver allocate anything (see pgingest.pipeline.memory).
limit_resident_memory()
