"""The claims path: claim messages and objects, processing, result delivery, dead letters, object store, frame codec."""
