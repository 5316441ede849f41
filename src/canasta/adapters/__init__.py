"""I/O: database tables and engines, migrations, files."""
