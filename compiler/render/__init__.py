"""Graph → diagrams. The only room of the compiler that imports graphviz."""
