"""`make soak`: two workers on PostgreSQL + Redis under a mixed load, then checks."""
