"""Benchmarks behind `phobos bench`: each measures this project beside its peer in one run."""
