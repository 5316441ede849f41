"""The edges: command line, HTTP API."""
