"""Business rules over events: the findings rules and their batch runner, brand ownership of
GS1 prefixes, recalls, tax."""
