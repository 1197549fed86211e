"""The built-in plugins: each one a plugin like any in-house one, loaded by entry point."""
