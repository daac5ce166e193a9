"""The claims path: claim messages and objects, processing, result delivery, dead letters, the object store, the table codec."""
