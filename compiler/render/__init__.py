"""Graph → diagrams. The only room of the compiler that imports graphviz.

`view.py` decides what is drawn (boxes, edges, clusters at a depth; no graphviz), `labels.py` the words,
`theme.py` the colours, and `dot.py` writes the DOT text and runs Graphviz's `dot` for images.
"""
