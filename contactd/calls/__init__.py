"""Call attempts: the Originate, the events that follow it, and the stored attempt row."""
