"""Acme's embargo rule for drm-license-proxy."""
