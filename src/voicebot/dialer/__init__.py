"""The dialer: claims due call-backs, checks the compliance gate, paces, and dials."""
