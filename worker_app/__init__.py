"""homefarm: the render worker that turns an owner's GPU PC into the render node of their web app."""

__version__ = "0.1.0"
