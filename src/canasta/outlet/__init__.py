"""The outlet client: what a fuel station or ration shop runs (docs/offline.md)."""
