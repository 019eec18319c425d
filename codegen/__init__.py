"""Emitted-code templates, shipped as package data (`madc.templates`)."""
