"""The .cnn language: text → AST. Knows nothing of shapes or torch."""
