"""Desired state (manifests and their sources) and live state (lists, members, fields)
read from Iterable."""
