"""AST → shaped graph IR, its analyses, and its lowerings (torch, graphviz)."""
