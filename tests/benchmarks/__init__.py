"""The benchmark (`make bench`, docs/benchmarks.md): scripts, never collected by pytest."""
