"""The stages of a load put together, in DESIGN's order: discover, prepare, evolve, write,
keyed; ``run`` orchestrates them over one task per file (see ``docs/architecture.md``)."""
