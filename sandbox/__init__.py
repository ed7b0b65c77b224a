"""Local emulators of the commercial providers' APIs (see sandbox/README.md)."""
