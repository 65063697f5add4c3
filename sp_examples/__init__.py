"""Example portals: minimal pysaml2 service providers used by the demo and the tests."""
