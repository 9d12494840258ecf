"""Graph → PyTorch. The only room of the compiler that imports torch."""
