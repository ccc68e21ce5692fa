"""The pure core: compliance rules, retry policy, outcome types, phone and time helpers.

Nothing here does I/O or touches asyncio; every function takes the clock as an argument.
"""
