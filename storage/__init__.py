"""tenantgate storage layer."""
