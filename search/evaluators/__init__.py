"""Evaluators score a compiled candidate: training on real data, or zero-cost proxies."""
