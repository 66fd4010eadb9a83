"""A Blender script for tests: raises, as a broken scene setup would."""
raise RuntimeError("the template's rig has no bone named 'Hand.L'")
