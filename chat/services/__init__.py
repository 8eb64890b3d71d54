"""Every write of the chat app: permission checks, the change, its room event on commit."""
