"""The domain, in plain Python: no Ray, no SQL, no HTTP."""
