"""``python -m voicebot``: the same as the ``voicebot`` command."""

from voicebot.cli import app

app(prog_name="voicebot")
