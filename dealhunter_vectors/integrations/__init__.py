"""Optional adapters to the frameworks retrieval services orchestrate with (behind extras).

Each adapter module imports its framework only when it is imported itself; importing
``dealhunter_vectors`` never imports any of them.
"""
