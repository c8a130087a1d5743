"""A local SMS carrier for demos, tests and benchmarks. It stands in for the providers' servers."""
