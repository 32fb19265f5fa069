"""Benchmarks: run on demand with `make bench`, never part of the test run.

Each benchmark prints its figures; none asserts on time.
"""
