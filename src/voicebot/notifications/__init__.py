"""Signed JSON events to the lender's systems: risk flags, complaints, opt-outs, broken
promises (an outbox in the database, delivered by a worker in the app)."""
