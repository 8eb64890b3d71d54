"""The web client: a single page served at ``/``, plain JavaScript modules, no build step."""
