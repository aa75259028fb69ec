"""Routing: from an identified request to a bound, balanced, resilient client."""
