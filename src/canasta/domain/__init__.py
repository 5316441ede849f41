"""Plain objects and the rules they keep. No framework, ORM or I/O imports here."""
