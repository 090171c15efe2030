"""The gateway service: Sign-in, roles, the customer view and one front for every API."""
