"""tenantgate auth layer."""
