"""audiocache: a self-hosted TTS audio cache for voice agents."""

__version__ = "0.1.0"

__all__ = ["__version__"]
