"""voicebot: an asynchronous voice-bot dialer for car-loan post-loan follow-up calls."""

__version__ = "0.1.0"
