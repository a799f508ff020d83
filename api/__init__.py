"""tenantgate api layer."""
