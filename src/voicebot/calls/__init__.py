"""Live calls: a Twilio media stream bound to the dialog engine and the speech services.

``api/media.py`` answers the carrier (TwiML naming the stream, with a signed token binding it to
its call) and accepts the stream; a :class:`~voicebot.calls.session.CallSession` then runs the
conversation: prompts out as μ-law frames and marks, borrower audio in through an endpointer and
Vosk, DTMF, timers, and what the call established stored through :mod:`voicebot.calls.records`.
"""
