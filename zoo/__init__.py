"""The model zoo: `.cnn` files shipped as package data. Data, not code."""

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent
