"""tenantgate policies layer."""
