"""The job lifecycle and the transports it drives (the spec HTTP engine, SDK transports), the HTTP seam and pool."""
