"""Autoloaded definitions: one module per idea (resources, edge tables, ...)."""
