"""Benchmarks of the execution stream: ``python -m bench`` (see docs/benchmarks.md)."""
