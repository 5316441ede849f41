"""Record linkage: finding the registrations that are the same person, and measuring how
well that is done (``metrics``) on synthetic registries with known truth (``generator``)."""
