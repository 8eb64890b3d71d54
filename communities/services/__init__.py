"""Every write of the communities app: permission checks, the change, the audit entry."""
