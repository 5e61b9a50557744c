"""Benchmarks: Routine against its peers (compare), the scripted server, the tasks."""
