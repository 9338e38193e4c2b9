"""agm strategy package (spec and implementation wired in phase 2)."""
