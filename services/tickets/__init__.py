"""The tickets service: the customer directory and the service desk."""
