"""Graph → numbers: one pure function per quantity, keyed by node id. Never imports torch."""
