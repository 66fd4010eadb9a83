"""Scripts that run inside Blender; shipped as package data, never imported by homefarm."""
