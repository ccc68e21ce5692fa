"""Speech: telephone audio codecs, eSpeak NG synthesis and Vosk recognition."""
