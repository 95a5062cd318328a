"""Plugins for voice-agent frameworks (Pipecat, LiveKit) and the small HTTP client they share.

Nothing here is imported by the server: the frameworks are optional extras.
"""
