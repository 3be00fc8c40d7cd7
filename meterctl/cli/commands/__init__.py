"""The commands, one module per group: each parses its options, calls one Session method and renders the result."""
