"""Distributed-layout DDL and the Citus forms of the search statements."""
