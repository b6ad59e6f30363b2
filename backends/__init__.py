"""Ways of running and compiling flows, one module each (import name flowkit.backends)."""
