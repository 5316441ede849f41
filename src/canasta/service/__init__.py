"""One function or object per use case, and the bootstrap that wires the parts together."""
