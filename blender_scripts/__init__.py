"""Scripts that run inside Blender, shipped as package data; homefarm imports only ``contract``."""
