"""The distributed layout (Citus) DDL, versioned: layout_NNN_*.sql (db/distributed.py)."""
