"""Mutation testing of the core (``make mutation``): the runner, the report and the equivalents."""
