"""Icons, the sample scene and the default config; shipped as package data."""
