"""Local real servers for tests and the demo: ``python -m services up|down|status|logs``."""
