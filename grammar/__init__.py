"""The .scan grammar, shipped as package data (`madc.grammar`)."""
