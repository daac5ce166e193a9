"""The `flts` command line and the local development stack it runs (`flts dev`)."""
