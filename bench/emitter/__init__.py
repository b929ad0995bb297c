"""A node type that records log lines at a set rate, for load tests."""
