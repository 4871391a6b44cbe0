"""Rerunnable experiments: each trains several runs with the library and returns a figure and a table."""
