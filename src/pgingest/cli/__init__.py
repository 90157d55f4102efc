"""The ``pgingest`` command line: a thin layer over the library."""
