"""namers."""
