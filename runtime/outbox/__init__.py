"""Results out to hospital systems: the durable outbox, its couriers and wire formats."""
