"""reconciler: keep Iterable lists and user fields in line with YAML manifests."""

__version__ = "0.1.0"
