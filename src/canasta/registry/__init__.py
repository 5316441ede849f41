"""Registration: reading and validating registry files."""
